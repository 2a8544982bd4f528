package portal

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/client"
)

// wire is the body the form sends the API, on create or on update, as
// the JSON object the API reads, and the form's own problems.
func wire(t *testing.T, f subscriptionForm, create bool) (map[string]any, []fieldError) {
	t.Helper()
	if create {
		body, problems := f.newSubscription()
		return jsonMap(t, body), problems
	}
	body, problems := f.patch()
	return jsonMap(t, body), problems
}

// jsonMap is v as a JSON object decodes.
func jsonMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestFormBodySendsOnlyWhatChanges: the settings the API may not know
// (signatureScheme, sendTraceparent, auth) are sent only when the form
// changes them; secrets go out but a kept authentication is not resent;
// emptied fields remove on edit.
func TestFormBodySendsOnlyWhatChanges(t *testing.T) {
	base := func(f subscriptionForm) subscriptionForm {
		f.URL, f.EventTypes = "https://example.com/h", []string{"ticket.updated"}
		return f
	}
	oauth := &client.AuthView{Type: "oauth2", TokenURL: "https://idp/token", ClientID: "c"}
	tests := []struct {
		name     string
		create   bool
		form     subscriptionForm
		want     map[string]any // the keys of interest in the body; absent: must not be sent
		problems []fieldError
	}{
		{"defaults at create", true, base(newForm()),
			map[string]any{}, nil},
		{"every setting at create", true, base(subscriptionForm{Active: true, Scheme: "v1a", CurrentScheme: "v1", Traceparent: false, CurrentTraceparent: true,
			Filter: `data.x == 1`, Headers: "X-A: 1\n\nX-B : two words ", Auth: "oauth2", OAuth2TokenURL: "https://idp/token", OAuth2ClientID: "c",
			OAuth2ClientSecret: "s", OAuth2Scopes: "a, b c", OAuth2Audience: "aud"}),
			map[string]any{"signatureScheme": "v1a", "sendTraceparent": false, "filter": `data.x == 1`,
				"headers": map[string]string{"X-A": "1", "X-B": "two words"},
				"auth":    map[string]any{"type": "oauth2", "tokenUrl": "https://idp/token", "clientId": "c", "clientSecret": "s", "scopes": []string{"a", "b", "c"}, "audience": "aud"}}, nil},
		{"mtls at create", true, base(subscriptionForm{Auth: "mtls", MTLSCert: "CERT", MTLSKey: "KEY", Traceparent: true, CurrentTraceparent: true}),
			map[string]any{"auth": map[string]any{"type": "mtls", "certificate": "CERT", "privateKey": "KEY"}}, nil},
		{"edit keeping everything", false, base(subscriptionForm{Scheme: "v1a", CurrentScheme: "v1a", Traceparent: true, CurrentTraceparent: true,
			Filter: "x", Auth: "keep", CurrentAuth: oauth, HeaderNames: []string{"X-A"}}),
			map[string]any{"filter": "x"}, nil},
		{"edit removing filter, headers and auth", false, base(subscriptionForm{Scheme: "v1", CurrentScheme: "v1", Traceparent: true, CurrentTraceparent: false,
			RemoveHeaders: true, Auth: "none", CurrentAuth: oauth}),
			map[string]any{"filter": "", "headers": map[string]string{}, "auth": nil, "sendTraceparent": true}, nil},
		{"edit with none and no auth before", false, base(subscriptionForm{Auth: "none", Traceparent: true, CurrentTraceparent: true}),
			map[string]any{"filter": ""}, nil},
		{"oauth2 without its secret", true, base(subscriptionForm{Auth: "oauth2", OAuth2TokenURL: "https://idp/token", OAuth2ClientID: "c", Traceparent: true, CurrentTraceparent: true}),
			nil, []fieldError{{Field: "auth.clientSecret", Reason: "required"}}},
		{"a header line without a colon", true, base(subscriptionForm{Headers: "X-A 1", Traceparent: true, CurrentTraceparent: true}),
			nil, []fieldError{{Field: "headers", Reason: "line 1: want Name: value"}}},
		{"new headers and remove all", false, base(subscriptionForm{Headers: "X-A: 1", RemoveHeaders: true, Traceparent: true, CurrentTraceparent: true}),
			nil, []fieldError{{Field: "headers", Reason: "either remove every header or give new ones, not both"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, problems := wire(t, tt.form, tt.create)
			if diff := cmp.Diff(tt.problems, problems); diff != "" {
				t.Fatalf("problems (-want +got):\n%s", diff)
			}
			if tt.problems != nil {
				return
			}
			got := map[string]any{}
			for _, k := range []string{"signatureScheme", "sendTraceparent", "filter", "headers", "auth"} {
				if v, ok := body[k]; ok {
					got[k] = v
				}
			}
			if diff := cmp.Diff(jsonMap(t, tt.want), got); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}
