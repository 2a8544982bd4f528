package main

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// pagedItems is a fake API of five items in pages: read returns the page
// of limit items (2 by default) at cursor and records every call.
type pagedItems struct {
	calls []string
	err   error
}

func (p *pagedItems) read(_ context.Context, _ string, args []string, limit int, cursor string) ([]string, string, error) {
	p.calls = append(p.calls, "limit="+strconv.Itoa(limit)+" cursor="+cursor)
	if p.err != nil {
		return nil, "", p.err
	}
	items := []string{"a", "b", "c", "d", "e"}
	if len(args) > 0 {
		items = items[:1]
	}
	if limit == 0 {
		limit = 2
	}
	from, _ := strconv.Atoi(cursor)
	to := min(from+limit, len(items))
	next := ""
	if to < len(items) {
		next = strconv.Itoa(to)
	}
	return items[from:to], next, nil
}

// TestLister: every list command prints through lister, so its paging
// flags, --json shape and table are the same for all of them.
func TestLister(t *testing.T) {
	errRead := errors.New("read failed")
	errConnect := errors.New("no credentials")
	tests := []struct {
		name       string
		paged      *listFlags // nil: a list the API answers whole
		args       []string
		json       bool
		connectErr error
		readErr    error
		wantOut    string
		wantCalls  []string
		wantErr    error
	}{
		{name: "one page, the next cursor under the table", paged: &listFlags{},
			wantOut:   "ID    NAME\nid-a  item a\nid-b  item b\n\nmore: --cursor 2 (or --all)\n",
			wantCalls: []string{"limit=0 cursor="}},
		{name: "limit and cursor given", paged: &listFlags{limit: 1, cursor: "3"},
			wantOut:   "ID    NAME\nid-d  item d\n\nmore: --cursor 4 (or --all)\n",
			wantCalls: []string{"limit=1 cursor=3"}},
		{name: "--all follows every page", paged: &listFlags{all: true},
			wantOut:   "ID    NAME\nid-a  item a\nid-b  item b\nid-c  item c\nid-d  item d\nid-e  item e\n",
			wantCalls: []string{"limit=0 cursor=", "limit=0 cursor=2", "limit=0 cursor=4"}},
		{name: "--json: data and nextCursor", paged: &listFlags{limit: 2}, json: true,
			wantOut:   "{\n  \"data\": [\n    \"a\",\n    \"b\"\n  ],\n  \"nextCursor\": \"2\"\n}\n",
			wantCalls: []string{"limit=2 cursor="}},
		{name: "--json of the last page: no nextCursor", paged: &listFlags{cursor: "4"}, json: true,
			wantOut:   "{\n  \"data\": [\n    \"e\"\n  ]\n}\n",
			wantCalls: []string{"limit=0 cursor=4"}},
		{name: "unpaged: read once, no cursor printed", args: []string{"ten_1"},
			wantOut:   "ID    NAME\nid-a  item a\n",
			wantCalls: []string{"limit=0 cursor="}},
		{name: "a connect error stops before any read", paged: &listFlags{}, connectErr: errConnect,
			wantErr: errConnect},
		{name: "a read error is returned, nothing printed", paged: &listFlags{all: true}, readErr: errRead,
			wantCalls: []string{"limit=0 cursor="}, wantErr: errRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &pagedItems{err: tt.readErr}
			l := lister[string, string]{
				connect: func(*env) (string, error) { return "client", tt.connectErr },
				paged:   tt.paged,
				read:    api.read,
				columns: []string{"ID", "NAME"},
				row:     func(s string) []string { return []string{"id-" + s, "item " + s} },
			}
			var out bytes.Buffer
			err := l.run(context.Background(), &env{json: tt.json, stdout: &out}, tt.args)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("run = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantOut, out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCalls, api.calls); diff != "" {
				t.Errorf("reads (-want +got):\n%s", diff)
			}
		})
	}
}
