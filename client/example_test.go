package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/onestack/webhooks/client"
)

// fakeAPI stands in for webhookd in the examples: it answers the calls
// they make in the API's shapes.
func fakeAPI() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "POST" && r.URL.Path == "/api/subscriptions":
			var in map[string]any
			json.NewDecoder(r.Body).Decode(&in)
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"id":"sub_01JEXAMPLE","url":%q,"eventTypes":["ticket.updated"],"active":true,
				"signatureScheme":"v1","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","filter":%q,"headerNames":["X-Team"]}`,
				in["url"], in["filter"])
		case r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/deliveries"):
			fmt.Fprint(w, `{"data":[
				{"id":"dlv_2","eventId":"evt_2","eventType":"ticket.updated","status":"failed","attempts":[
					{"at":"2026-12-03T09:00:00Z","statusCode":500,"durationMs":12,"responseBody":"down"}]},
				{"id":"dlv_1","eventId":"evt_1","eventType":"ticket.updated","status":"succeeded","attempts":[
					{"at":"2026-12-03T08:59:00Z","statusCode":204,"durationMs":8,"responseBody":""}]}]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"no such path","code":"NOT_FOUND"}`)
		}
	}))
}

// Subscribe an endpoint to one type, with a filter and a custom header,
// and keep its signing secret for the receiver.
func ExampleClient_CreateSubscription() {
	srv := fakeAPI() // your webhookd's URL in real use
	defer srv.Close()
	c, err := client.New(client.Config{BaseURL: srv.URL, APIKey: "sk_..."})
	if err != nil {
		log.Fatal(err)
	}
	s, err := c.CreateSubscription(context.Background(), client.NewSubscription{
		URL:        "https://hooks.example.com/tickets",
		EventTypes: []string{"ticket.updated"},
		Filter:     `data.priority == "high"`,
		Headers:    map[string]string{"X-Team": "support"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.ID, *s.Filter, s.HeaderNames)
	fmt.Println(strings.HasPrefix(s.Secret, "whsec_"))
	// Output:
	// sub_01JEXAMPLE data.priority == "high" [X-Team]
	// true
}

// List a subscription's deliveries, following every page, with the
// status code of each one's last attempt.
func ExampleClient_Deliveries() {
	srv := fakeAPI()
	defer srv.Close()
	c, err := client.New(client.Config{BaseURL: srv.URL, APIKey: "sk_..."})
	if err != nil {
		log.Fatal(err)
	}
	cursor := ""
	for {
		page, next, err := c.Deliveries(context.Background(), "sub_01JEXAMPLE", client.DeliveryQuery{Limit: 100, Cursor: cursor})
		if err != nil {
			log.Fatal(err)
		}
		for _, d := range page {
			last := d.Attempts[len(d.Attempts)-1]
			fmt.Println(d.ID, d.Status, *last.StatusCode)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	// Output:
	// dlv_2 failed 500
	// dlv_1 succeeded 204
}
