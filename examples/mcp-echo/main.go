// Command mcp-echo is a small MCP server for trying the gateway: tools
// echo and add, no authentication; over streamable HTTP on a loopback
// address, or over stdio with -stdio. It is also the upstream of the
// gateway benchmarks and interop tests (-tools adds cheap tools tool_0 …
// tool_N-1; -stateless serves without sessions).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9801", "listen address")
	stdio := flag.Bool("stdio", false, "serve on stdin and stdout instead of HTTP")
	crashable := flag.Bool("crashable", false, "add a tool, exit, that ends the process (for restart tests)")
	tools := flag.Int("tools", 0, "extra tools tool_0 … tool_N-1 that answer their own name")
	stateless := flag.Bool("stateless", false, "serve streamable HTTP without sessions")
	flag.Parse()
	s := server.NewMCPServer("mcp-echo", "1.0.0", server.WithToolCapabilities(true))
	s.AddTool(mcp.NewTool("echo", mcp.WithDescription("Echo the text back."),
		mcp.WithString("text", mcp.Required(), mcp.Description("what to echo"))),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			text, err := req.RequireString("text")
			if err != nil {
				return mcp.NewToolResultError(err.Error()), nil
			}
			return mcp.NewToolResultText(text), nil
		})
	s.AddTool(mcp.NewTool("add", mcp.WithDescription("Add two numbers."),
		mcp.WithNumber("a", mcp.Required()), mcp.WithNumber("b", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			a, errA := req.RequireFloat("a")
			b, errB := req.RequireFloat("b")
			if errA != nil || errB != nil {
				return mcp.NewToolResultError("a and b must be numbers"), nil
			}
			return mcp.NewToolResultText(fmt.Sprint(a + b)), nil
		})
	for i := range *tools {
		name := fmt.Sprintf("tool_%d", i)
		s.AddTool(mcp.NewTool(name, mcp.WithDescription("A tool that answers its own name."), mcp.WithString("text")),
			func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return mcp.NewToolResultText(name), nil
			})
	}
	if *crashable {
		s.AddTool(mcp.NewTool("exit", mcp.WithDescription("End this process.")),
			func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				log.Print("mcp-echo: exiting on request")
				os.Exit(3)
				return nil, nil
			})
	}
	if *stdio {
		log.Print("mcp-echo: serving on stdio")
		if err := server.ServeStdio(s); err != nil {
			log.Fatal(err)
		}
		return
	}
	if host, _, err := net.SplitHostPort(*addr); err != nil || !net.ParseIP(host).IsLoopback() {
		log.Fatal("mcp-echo listens on a loopback address only")
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", server.NewStreamableHTTPServer(s, server.WithStateLess(*stateless)))
	log.Printf("mcp-echo: http://%s/mcp", *addr)
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
