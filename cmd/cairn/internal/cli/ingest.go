package cli

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/cmd/cairn/internal/ingest"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/domain/segment"
)

// maxLine bounds one NDJSON line; Segment caps a call at 32 KB, so anything
// far larger is a broken file rather than an event.
const maxLine = 1 << 20

// ReadNDJSON decodes Segment JSON lines. Blank lines are skipped; lines that
// do not decode are returned as rejections with their line number, so one bad
// line does not stop an import.
func ReadNDJSON(r io.Reader) ([]ingest.Item, []ingest.Rejection, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var items []ingest.Item
	var bad []ingest.Rejection
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		ev, err := segment.DecodeCall("", b)
		if err != nil {
			rej := ingest.Rejection{Line: line, Reason: err.Error()}
			if fe, ok := err.(*segment.FieldError); ok {
				rej.Field, rej.Reason = fe.Field, fe.Reason
			}
			bad = append(bad, rej)
			continue
		}
		items = append(items, ingest.Item{Event: ev, Line: line})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read line %d: %w", line+1, err)
	}
	return items, bad, nil
}

func runIngest(ctx context.Context, env *Env, args []string) error {
	fs := helpFlagSet(env, "ingest", "ingest FILE.ndjson|- [--batch 500] [-o table|json]")
	c := addConnFlags(fs, env, []string{"ingestion"})
	batch := fs.Int("batch", 500, "events per request (at most 2500)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one file (or - for stdin)")
	}
	if *batch <= 0 || *batch > ingest.MaxBatchEvents {
		return usagef("--batch must be between 1 and %d", ingest.MaxBatchEvents)
	}
	if err := c.resolve(fs); err != nil {
		return err
	}
	in := env.Stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return fmt.Errorf("open events file: %w", err)
		}
		defer f.Close()
		in = f
	}
	items, bad, err := ReadNDJSON(in)
	if err != nil {
		return fmt.Errorf("read %s: %w", pos[0], err)
	}
	var sum ingest.Summary
	for _, r := range bad {
		sum.Reject(r)
	}
	conn, err := c.dial("ingestion")
	if err != nil {
		return err
	}
	defer conn.Close()
	bar := &progressBar{w: env.Stderr, enabled: env.IsTTY && c.output == "table"}
	// The deadline covers the whole upload, scaled to its size.
	ctx, cancel := context.WithTimeout(ctx, c.timeout+time.Duration(len(items)/1000)*time.Second)
	defer cancel()
	err = ingest.Send(ctx, ingestionv1.NewIngestionServiceClient(conn), items, ingest.Options{Workspace: c.workspace, BatchSize: *batch, Progress: bar.update}, &sum)
	bar.done()
	if err != nil {
		return fmt.Errorf("ingest %s (after %d of %d events): %w", pos[0], sum.Sent, len(items), err)
	}
	return printSummary(env.Stdout, c.output, sum)
}

func printSummary(w io.Writer, output string, sum ingest.Summary) error {
	if output == "json" {
		return writeJSON(w, map[string]any{
			"sent": sum.Sent, "accepted": sum.Accepted, "duplicates": sum.Duplicates, "rejected": sum.Rejected, "rejections": rejectionsJSON(sum.Rejections),
		})
	}
	fmt.Fprintf(w, "accepted %d, duplicate %d, rejected %d\n", sum.Accepted, sum.Duplicates, sum.Rejected)
	if len(sum.Rejections) > 0 {
		fmt.Fprintln(w, "\nFirst rejections:")
		t := newTable(w, "LINE", "FIELD", "REASON")
		for _, r := range sum.Rejections {
			t.row(r.Line, dash(r.Field), r.Reason)
		}
		if err := t.flush(); err != nil {
			return err
		}
		if sum.Rejected > len(sum.Rejections) {
			fmt.Fprintf(w, "... and %d more\n", sum.Rejected-len(sum.Rejections))
		}
	}
	return nil
}

func rejectionsJSON(rs []ingest.Rejection) []map[string]any {
	out := make([]map[string]any, 0, len(rs))
	for _, r := range rs {
		out = append(out, map[string]any{"line": r.Line, "message_id": r.MessageID, "field": r.Field, "reason": r.Reason})
	}
	return out
}

// progressBar draws a one-line bar on a terminal; it is silent otherwise so
// logs and pipes stay clean.
type progressBar struct {
	w       io.Writer
	enabled bool
	drawn   bool
}

func (p *progressBar) update(done, total int) {
	if !p.enabled || total == 0 {
		return
	}
	const width = 30
	n := done * width / total
	fmt.Fprintf(p.w, "\r[%s%s] %3d%% %d/%d events", strings.Repeat("=", n), strings.Repeat(" ", width-n), done*100/total, done, total)
	p.drawn = true
}

func (p *progressBar) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

// runDemo writes the demo workspace as NDJSON.
func runDemo(_ context.Context, env *Env, args []string) error {
	fs := helpFlagSet(env, "demo", "demo --out FILE.ndjson [--seed 1] [--demo-accounts 300] [--now 2026-11-01]")
	d := addDemoFlags(fs)
	out := fs.String("out", "-", "output file (- for stdout)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	opts, err := d.options()
	if err != nil {
		return err
	}
	w := env.Stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("create demo file: %w", err)
		}
		defer f.Close()
		w = f
	}
	ds := generate(opts)
	if err := writeDemo(w, ds); err != nil {
		return err
	}
	if *out != "-" {
		fmt.Fprintf(env.Stderr, "wrote %d events for %d accounts to %s\n", len(ds.Events), len(ds.Accounts), *out)
	}
	return nil
}

// demoFlags select the generated workspace.
type demoFlags struct {
	seed     uint64
	accounts int
	now      string
}

func addDemoFlags(fs *flag.FlagSet) *demoFlags {
	d := &demoFlags{}
	fs.Uint64Var(&d.seed, "seed", 1, "random seed of the demo workspace")
	fs.IntVar(&d.accounts, "demo-accounts", 300, "number of demo accounts")
	fs.StringVar(&d.now, "now", "", "end of the simulated year, YYYY-MM-DD (default: today, UTC)")
	return d
}
