// Command mcp-upstream is the tool server of the gateway benchmarks and
// interop tests: cheap tools (echo, add, and tool_0 … tool_N-1) over
// streamable HTTP on a loopback address, with sessions or stateless.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9801", "listen address (loopback only)")
	tools := flag.Int("tools", 0, "extra tools tool_0 … tool_N-1 beside echo and add")
	stateless := flag.Bool("stateless", false, "serve without sessions")
	flag.Parse()
	if host, _, err := net.SplitHostPort(*addr); err != nil || !net.ParseIP(host).IsLoopback() {
		log.Fatal("mcp-upstream listens on a loopback address only")
	}
	s := server.NewMCPServer("mcp-upstream", "1.0.0", server.WithToolCapabilities(true))
	s.AddTool(mcp.NewTool("echo", mcp.WithDescription("Return the text."), mcp.WithString("text", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			text, err := req.RequireString("text")
			if err != nil {
				return mcp.NewToolResultError(err.Error()), nil
			}
			return mcp.NewToolResultText(text), nil
		})
	s.AddTool(mcp.NewTool("add", mcp.WithDescription("Add two numbers."), mcp.WithNumber("a", mcp.Required()), mcp.WithNumber("b", mcp.Required())),
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
	mux := http.NewServeMux()
	mux.Handle("/mcp", server.NewStreamableHTTPServer(s, server.WithStateLess(*stateless)))
	log.Printf("mcp-upstream: http://%s/mcp (%d tools)", *addr, 2+*tools)
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
