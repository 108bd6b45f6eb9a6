package audit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/egress"
	"github.com/xavyo/xavyo/internal/store"
)

// Exports stream a tenant's audit records to its SIEM (docs/design/0000-architecture.md §8): each
// record becomes one RFC 5424 syslog message — its text the record as JSON,
// or as a CEF event — sent over TCP (optionally TLS) with octet-counting
// framing (RFC 6587, RFC 5425), in order, from a cursor kept per export:
// nothing is skipped when the SIEM is down (the export waits and resumes
// where it stopped), and a record may be sent twice only when a batch was
// cut off mid-way.

// Export is one stream of a tenant's audit records to a syslog receiver.
type Export struct {
	ID           uuid.UUID  `json:"id"`
	Name         string     `json:"name"`
	Address      string     `json:"address" doc:"host:port of the syslog receiver (TCP)"`
	TLS          bool       `json:"tls" doc:"syslog over TLS (RFC 5425)"`
	ServerCAPEM  string     `json:"server_ca_pem,omitempty" doc:"CA certificates that sign the receiver's (default: the system's)"`
	Format       string     `json:"format" doc:"json (the record) or cef (ArcSight Common Event Format)"`
	Status       string     `json:"status" doc:"active or paused"`
	Cursor       int64      `json:"cursor" doc:"the last record sent (audit seq)"`
	Exported     int64      `json:"exported" doc:"records sent so far"`
	Lag          int64      `json:"lag" doc:"records written since the cursor"`
	LastError    *string    `json:"last_error,omitempty"`
	LastExported *time.Time `json:"last_exported_at,omitempty"`
	Version      int64      `json:"version"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

// ExportInput creates or changes an export.
type ExportInput struct {
	Name        *string `json:"name"`
	Address     *string `json:"address"`
	TLS         *bool   `json:"tls"`
	ServerCAPEM *string `json:"server_ca_pem"`
	Format      *string `json:"format"`
	Status      *string `json:"status" doc:"active or paused"`
	// Start says where a new export begins: now (the default: records
	// written from now on) or beginning (the whole log).
	Start string `json:"start,omitempty" doc:"now (default) or beginning"`
}

// Exporter manages exports and runs them.
type Exporter struct {
	DB     *store.DB
	Audit  Recorder
	Dialer *net.Dialer // checked dials (egress)
	Logger *slog.Logger
	// Version goes in CEF headers.
	Version string
	Now     func() time.Time
	// Batch is how many records one send takes (default 500).
	Batch int
}

const exportCols = `id, name, address, tls, server_ca_pem, format, status, cursor, exported, last_error, last_exported_at, version, created_at, updated_at`

func scanExport(row interface{ Scan(...any) error }) (*Export, error) {
	var x Export
	err := row.Scan(&x.ID, &x.Name, &x.Address, &x.TLS, &x.ServerCAPEM, &x.Format, &x.Status, &x.Cursor, &x.Exported, &x.LastError,
		&x.LastExported, &x.Version, &x.CreatedAt, &x.UpdatedAt)
	return &x, err
}

func (e *Exporter) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return store.Now()
}

func checkExport(x *Export) error {
	if x.Name == "" || len(x.Name) > 200 {
		return apperr.Invalid("name", "must be 1 to 200 characters")
	}
	host, port, err := net.SplitHostPort(x.Address)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return apperr.Invalid("address", "must be host:port")
	}
	if x.Format != "json" && x.Format != "cef" {
		return apperr.Invalid("format", "must be json or cef")
	}
	if x.Status != "active" && x.Status != "paused" {
		return apperr.Invalid("status", "must be active or paused")
	}
	if x.ServerCAPEM != "" {
		if !x.TLS {
			return apperr.Invalid("server_ca_pem", "is for exports over TLS")
		}
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(x.ServerCAPEM)) {
			return apperr.Invalid("server_ca_pem", "holds no PEM certificate")
		}
	}
	return nil
}

func (in ExportInput) apply(x *Export) {
	if in.Name != nil {
		x.Name = *in.Name
	}
	if in.Address != nil {
		x.Address = *in.Address
	}
	if in.TLS != nil {
		x.TLS = *in.TLS
	}
	if in.ServerCAPEM != nil {
		x.ServerCAPEM = *in.ServerCAPEM
	}
	if in.Format != nil {
		x.Format = *in.Format
	}
	if in.Status != nil {
		x.Status = *in.Status
	}
}

// head is the tenant's last audit seq (0 for none), from the chain head
// the sequencer keeps with every batch.
func head(ctx context.Context, tx *store.Tx) (int64, error) {
	var seq int64
	err := tx.QueryRow(ctx, `SELECT seq FROM audit_heads WHERE tenant_id = $1`, tx.TenantID()).Scan(&seq)
	if store.NoRows(err) {
		return 0, nil
	}
	return seq, err
}

// CreateExport adds an export.
func (e *Exporter) CreateExport(ctx context.Context, in ExportInput) (*Export, error) {
	x := &Export{ID: uuid.Must(uuid.NewV7()), Format: "json", Status: "active", Version: 1}
	in.apply(x)
	if err := checkExport(x); err != nil {
		return nil, err
	}
	if in.Start != "" && in.Start != "now" && in.Start != "beginning" {
		return nil, apperr.Invalid("start", "must be now or beginning")
	}
	now := e.now()
	x.CreatedAt, x.UpdatedAt = now, now
	err := e.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if in.Start != "beginning" {
			var err error
			if x.Cursor, err = head(ctx, tx); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO audit_exports (tenant_id, id, name, address, tls, server_ca_pem, format, status, cursor, next_attempt_at, version,
			created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $10, $10)`, tx.TenantID(), x.ID, x.Name, x.Address, x.TLS,
			x.ServerCAPEM, x.Format, x.Status, x.Cursor, now)
		if err != nil {
			return err
		}
		return RecordChangeTx(ctx, tx, e.Audit, "audit_export.create", "audit_export", x.ID.String(),
			map[string]any{"name": x.Name, "address": x.Address, "tls": x.TLS, "format": x.Format, "cursor": x.Cursor})
	})
	if err != nil {
		return nil, err
	}
	return e.GetExport(ctx, x.ID)
}

// GetExport reads an export, with its lag.
func (e *Exporter) GetExport(ctx context.Context, id uuid.UUID) (*Export, error) {
	var x *Export
	err := e.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		if x, err = scanExport(tx.QueryRow(ctx, `SELECT `+exportCols+` FROM audit_exports WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id)); err != nil {
			return err
		}
		h, err := head(ctx, tx)
		x.Lag = max(h-x.Cursor, 0)
		return err
	})
	if store.NoRows(err) {
		return nil, apperr.NotFound("audit export")
	}
	return x, err
}

// ListExports reads the tenant's exports.
func (e *Exporter) ListExports(ctx context.Context) ([]*Export, error) {
	var out []*Export
	err := e.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		h, err := head(ctx, tx)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+exportCols+` FROM audit_exports WHERE tenant_id = $1 ORDER BY id`, tx.TenantID())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			x, err := scanExport(rows)
			if err != nil {
				return err
			}
			x.Lag = max(h-x.Cursor, 0)
			out = append(out, x)
		}
		return rows.Err()
	})
	return out, err
}

// UpdateExport changes an export (If-Match: ifVersion, 0 for any).
func (e *Exporter) UpdateExport(ctx context.Context, id uuid.UUID, in ExportInput, ifVersion int64) (*Export, error) {
	if in.Start != "" {
		return nil, apperr.Invalid("start", "is for new exports")
	}
	err := e.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		x, err := scanExport(tx.QueryRow(ctx, `SELECT `+exportCols+` FROM audit_exports WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tx.TenantID(), id))
		if store.NoRows(err) {
			return apperr.NotFound("audit export")
		}
		if err != nil {
			return err
		}
		if ifVersion != 0 && x.Version != ifVersion {
			return apperr.New(apperr.KindPreconditionFailed, "audit export changed since version %d (now %d)", ifVersion, x.Version)
		}
		in.apply(x)
		if err := checkExport(x); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE audit_exports SET name = $1, address = $2, tls = $3, server_ca_pem = $4, format = $5, status = $6,
			consecutive_failures = 0, next_attempt_at = $7, version = version + 1, updated_at = $7 WHERE tenant_id = $8 AND id = $9`,
			x.Name, x.Address, x.TLS, x.ServerCAPEM, x.Format, x.Status, e.now(), tx.TenantID(), id)
		if err != nil {
			return err
		}
		return RecordChangeTx(ctx, tx, e.Audit, "audit_export.update", "audit_export", id.String(), in)
	})
	if err != nil {
		return nil, err
	}
	return e.GetExport(ctx, id)
}

// DeleteExport removes an export.
func (e *Exporter) DeleteExport(ctx context.Context, id uuid.UUID) error {
	err := e.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM audit_exports WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return apperr.NotFound("audit export")
		}
		return RecordChangeTx(ctx, tx, e.Audit, "audit_export.delete", "audit_export", id.String(), nil)
	})
	if err != nil {
		return err
	}
	return nil
}

// Run sends due exports until ctx ends (one worker per replica: exports
// are claimed with leases, FOR UPDATE SKIP LOCKED).
func (e *Exporter) Run(ctx context.Context, every time.Duration) error {
	for {
		n, err := e.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			e.logger().Error("audit export failed", "error", err)
		}
		if n > 0 {
			continue // more may be waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

func (e *Exporter) logger() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.Default()
}

type claimedExport struct {
	tenant, id uuid.UUID
	address    string
	tls        bool
	serverCA   string
	format     string
	cursor     int64
	failures   int
}

// RunOnce claims due exports, sends each one batch of the records after
// its cursor and returns how many records it sent.
func (e *Exporter) RunOnce(ctx context.Context) (int, error) {
	now := e.now()
	var batch []claimedExport
	err := e.DB.SystemTx(ctx, func(tx *store.Tx) error {
		batch = batch[:0]
		rows, err := tx.Query(ctx, `UPDATE audit_exports SET lease_until = $1 WHERE id IN (SELECT id FROM audit_exports
			WHERE status = 'active' AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until <= $2)
			ORDER BY next_attempt_at, id LIMIT 16 FOR UPDATE SKIP LOCKED)
			RETURNING tenant_id, id, address, tls, server_ca_pem, format, cursor, consecutive_failures`, now.Add(time.Minute), now)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c claimedExport
			if err := rows.Scan(&c.tenant, &c.id, &c.address, &c.tls, &c.serverCA, &c.format, &c.cursor, &c.failures); err != nil {
				return err
			}
			batch = append(batch, c)
		}
		return rows.Err()
	})
	if err != nil {
		return 0, fmt.Errorf("audit: claim exports: %w", err)
	}
	sent := 0
	for _, c := range batch {
		n, err := e.runExport(ctx, c)
		if err != nil {
			return sent, err
		}
		sent += n
	}
	return sent, nil
}

// runExport sends one batch for a claimed export and settles it.
func (e *Exporter) runExport(ctx context.Context, c claimedExport) (int, error) {
	limit := e.Batch
	if limit <= 0 {
		limit = 500
	}
	var recs []*Record
	err := e.DB.InTenantRead(store.WithTenant(ctx, c.tenant), func(tx *store.Tx) error {
		recs = recs[:0]
		rows, err := tx.Query(ctx, `SELECT `+recordCols+` FROM audit_log WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, tx.TenantID(), c.cursor, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRecord(rows)
			if err != nil {
				return err
			}
			recs = append(recs, r)
		}
		return rows.Err()
	})
	if err != nil {
		return 0, err
	}
	now := e.now()
	settle := func(q string, args ...any) error {
		return e.DB.SystemTx(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, q, args...)
			return err
		})
	}
	if len(recs) == 0 {
		return 0, settle(`UPDATE audit_exports SET lease_until = NULL, next_attempt_at = $1 WHERE tenant_id = $2 AND id = $3`, now, c.tenant, c.id)
	}
	if err := e.send(ctx, c, recs); err != nil {
		delay := min(time.Second<<min(c.failures, 9), 5*time.Minute)
		msg := err.Error() // what the tenant is shown; the cause is logged
		e.logger().Warn("audit export could not send", "tenant_id", c.tenant.String(), "export_id", c.id.String(), "error", msg,
			"cause", errors.Unwrap(err))
		return 0, settle(`UPDATE audit_exports SET lease_until = NULL, consecutive_failures = consecutive_failures + 1, next_attempt_at = $1,
			last_error = $2 WHERE tenant_id = $3 AND id = $4`, now.Add(delay), msg, c.tenant, c.id)
	}
	last := recs[len(recs)-1].Seq
	// The cursor only moves on (a slower worker whose lease lapsed does not
	// take it back).
	return len(recs), settle(`UPDATE audit_exports SET lease_until = NULL, consecutive_failures = 0, next_attempt_at = $1, last_error = NULL,
		last_exported_at = $1, exported = exported + $2, cursor = CASE WHEN cursor < $3 THEN $3 ELSE cursor END WHERE tenant_id = $4 AND id = $5`,
		now, len(recs), last, c.tenant, c.id)
}

// sendError is a failed send: what the tenant is shown (last_error) and
// the cause, for the log.
type sendError struct {
	public string
	cause  error
}

func (e *sendError) Error() string { return e.public }
func (e *sendError) Unwrap() error { return e.cause }

// send writes records to the receiver, each one frame, on one connection.
func (e *Exporter) send(ctx context.Context, c claimedExport, recs []*Record) error {
	dialer := e.Dialer
	if dialer == nil {
		dialer = &net.Dialer{Timeout: 5 * time.Second}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := dialer.DialContext(ctx, "tcp", c.address)
	if err != nil {
		return &sendError{public: "the receiver could not be reached: " + egress.Reason(err), cause: err}
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if c.tls {
		host, _, _ := net.SplitHostPort(c.address)
		cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if c.serverCA != "" {
			cfg.RootCAs = x509.NewCertPool()
			cfg.RootCAs.AppendCertsFromPEM([]byte(c.serverCA))
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return &sendError{public: "TLS with the receiver failed: " + egress.Reason(err), cause: err}
		}
		conn = tc
	}
	host, _ := os.Hostname()
	var buf []byte
	for _, r := range recs {
		msg := SyslogMessage(r, c.format, host, e.Version)
		buf = append(append(append(buf, strconv.Itoa(len(msg))...), ' '), msg...)
	}
	if _, err := conn.Write(buf); err != nil {
		return &sendError{public: "sending to the receiver failed: " + egress.Reason(err), cause: err}
	}
	return nil
}

// SyslogMessage is a record as an RFC 5424 message: facility authpriv,
// severity by outcome (info for success, notice for denied, warning for
// failure), app-name xavyo, msgid audit, the record (JSON or CEF) as text.
func SyslogMessage(r *Record, format, host, version string) []byte {
	sev := 6
	switch r.Outcome {
	case OutcomeDenied:
		sev = 5
	case OutcomeFailure:
		sev = 4
	}
	if host == "" || len(host) > 255 || strings.ContainsAny(host, " \t\r\n") {
		host = "-"
	}
	var text []byte
	if format == "cef" {
		text = []byte(CEF(r, version))
	} else {
		text, _ = json.Marshal(r)
	}
	head := fmt.Sprintf("<%d>1 %s %s xavyo - audit - ", 10*8+sev, r.At.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), host)
	return append([]byte(head), text...)
}

var (
	cefHeader    = strings.NewReplacer(`\`, `\\`, `|`, `\|`, "\r", " ", "\n", " ")
	cefExtension = strings.NewReplacer(`\`, `\\`, `=`, `\=`, "\r", `\r`, "\n", `\n`)
)

// CEF is a record as an ArcSight Common Event Format event: the action as
// its class and name, severity by outcome (3 success, 6 denied, 8
// failure), and the record's fields as extensions.
func CEF(r *Record, version string) string {
	sev := 3
	switch r.Outcome {
	case OutcomeDenied:
		sev = 6
	case OutcomeFailure:
		sev = 8
	}
	if version == "" {
		version = "dev"
	}
	ext := []string{
		"rt=" + strconv.FormatInt(r.At.UnixMilli(), 10),
		"act=" + cefExtension.Replace(r.Action),
		"outcome=" + cefExtension.Replace(r.Outcome),
		"suser=" + cefExtension.Replace(r.ActorID),
		"cs1Label=actorKind", "cs1=" + cefExtension.Replace(r.ActorKind),
		"cs2Label=target", "cs2=" + cefExtension.Replace(r.TargetKind+"/"+r.TargetID),
		"cs3Label=tenant", "cs3=" + r.TenantID.String(),
		"cs4Label=requestId", "cs4=" + cefExtension.Replace(r.RequestID),
		"cs5Label=details", "cs5=" + cefExtension.Replace(string(r.Details)),
		"cn1Label=seq", "cn1=" + strconv.FormatInt(r.Seq, 10),
		"externalId=" + r.ID.String(),
	}
	return fmt.Sprintf("CEF:0|xavyo|xavyo|%s|%s|%s|%d|%s", cefHeader.Replace(version), cefHeader.Replace(r.Action), cefHeader.Replace(r.Action), sev,
		strings.Join(ext, " "))
}
