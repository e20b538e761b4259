package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Doc is one indexed document, flattened to dotted field names.
type Doc map[string]string

// Search reads back what a team's consumer indexed. VictoriaLogs and
// Elasticsearch each implement it; tests use nothing else.
type Search interface {
	// Docs returns the team's documents (deadLetters: its dead letters),
	// each with the requested fields.
	Docs(ctx context.Context, team string, deadLetters bool, fields ...string) ([]Doc, error)
	// Dedups reports whether the server replaces a document written twice
	// with the same _id (Elasticsearch) or keeps both (VictoriaLogs).
	Dedups() bool
}

// IDCounts counts a team's documents by their id field.
func IDCounts(ctx context.Context, s Search, team string) (map[string]int, error) {
	docs, err := s.Docs(ctx, team, false, "id")
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(docs))
	for _, d := range docs {
		out[d["id"]]++
	}
	return out, nil
}

// VictoriaLogs reads back through LogsQL. It ignores _index and _id, so
// dead letters are told apart by their deadletter.reason field and
// duplicates stay visible.
type VictoriaLogs struct {
	QueryURL string
}

// Dedups is false: VictoriaLogs keeps every write.
func (v *VictoriaLogs) Dedups() bool { return false }

// Docs runs `team:=T deadletter.reason:"" | fields ...`.
func (v *VictoriaLogs) Docs(ctx context.Context, team string, deadLetters bool, fields ...string) ([]Doc, error) {
	filter := `deadletter.reason:""`
	if deadLetters {
		filter = `deadletter.reason:*`
	}
	q := fmt.Sprintf(`team:=%q %s | fields %s`, team, filter, strings.Join(quoteFields(fields), ", "))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.QueryURL, strings.NewReader(url.Values{"query": {q}, "limit": {"10000000"}}.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query VictoriaLogs: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("query VictoriaLogs %q: %s: %s", q, resp.Status, b)
	}
	var out []Doc
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	for sc.Scan() {
		var d Doc
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			return nil, fmt.Errorf("decode VictoriaLogs row: %w", err)
		}
		out = append(out, d)
	}
	return out, sc.Err()
}

func quoteFields(fields []string) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = fmt.Sprintf("%q", f)
	}
	return out
}

// Elasticsearch reads back with scroll searches over every index, filtered
// by team. Documents are replaced by _id, so it de-duplicates.
type Elasticsearch struct {
	URL string
}

// Dedups is true: a replay overwrites by _id.
func (e *Elasticsearch) Dedups() bool { return true }

// Docs scrolls through the team's documents.
func (e *Elasticsearch) Docs(ctx context.Context, team string, deadLetters bool, fields ...string) ([]Doc, error) {
	if _, err := e.do(ctx, http.MethodPost, "/_refresh", nil); err != nil {
		return nil, err
	}
	exists := map[string]any{"exists": map[string]any{"field": "deadletter.reason"}}
	boolQ := map[string]any{"filter": []any{map[string]any{"term": map[string]any{"team": team}}}}
	if deadLetters {
		boolQ["filter"] = append(boolQ["filter"].([]any), exists)
	} else {
		boolQ["must_not"] = []any{exists}
	}
	body := map[string]any{"size": 5000, "query": map[string]any{"bool": boolQ}, "_source": fields}
	raw, err := e.do(ctx, http.MethodPost, "/*/_search?scroll=1m", body)
	var out []Doc
	for {
		if err != nil {
			return nil, err
		}
		var res struct {
			ScrollID string `json:"_scroll_id"`
			Hits     struct {
				Hits []struct {
					Source map[string]any `json:"_source"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := json.Unmarshal(raw, &res); err != nil {
			return nil, fmt.Errorf("decode search response: %w", err)
		}
		if len(res.Hits.Hits) == 0 {
			return out, nil
		}
		for _, h := range res.Hits.Hits {
			d := Doc{}
			flatten("", h.Source, d)
			out = append(out, d)
		}
		raw, err = e.do(ctx, http.MethodPost, "/_search/scroll", map[string]any{"scroll": "1m", "scroll_id": res.ScrollID})
	}
}

func flatten(prefix string, v any, out Doc) {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			flatten(key, val, out)
		}
	case string:
		out[prefix] = t
	case nil:
	default:
		b, _ := json.Marshal(t)
		out[prefix] = string(b)
	}
}

func (e *Elasticsearch) do(ctx context.Context, method, path string, body any) ([]byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.URL+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return b, nil
}
