package portal

import "github.com/onestack/webhooks/client"

// The pages' data: one struct per template (templates/<name>.html), the
// view's Data. A partial that two pages share reads the fields both have
// (Form and Catalog for "subscription-fields", Back for
// "delivery-card").

// errorPage is error.html: a page that says what went wrong.
type errorPage struct{ Message string }

// limitedPage is limited.html: the API budget is spent.
type limitedPage struct {
	// RetryAfter is in seconds; At is when, as the clock shows it.
	RetryAfter int
	At         string
	// Again is the page to try again; IsGet whether a link can.
	Again string
	IsGet bool
	// Limit is the tenant's requests a minute (0: the API did not say).
	Limit int
}

// loginPage is login.html: sign in with an API key.
type loginPage struct {
	CSRF    string // the double-submit token
	Next    string // where to go once signed in
	Problem string
}

// signedInPage is signed-in.html: a link was redeemed.
type signedInPage struct {
	Tenant string // its name
	Next   string
}

// subscriptionsPage is subscriptions.html: one page of them.
type subscriptionsPage struct {
	Subscriptions []client.Subscription
	Next          string // the next page's cursor
	Paged         bool   // past the first page
}

// subscriptionFormPage is subscription-form.html: the create form.
type subscriptionFormPage struct {
	Form    subscriptionForm
	Catalog []client.EventType
}

// subscriptionPage is subscription.html: one subscription and its edit
// form.
type subscriptionPage struct {
	Subscription client.Subscription
	Form         subscriptionForm
	Catalog      []client.EventType
}

// secretPage is secret.html: a signing secret (or v1a public key), just
// created, read or rotated.
type secretPage struct {
	Subscription     client.Subscription
	Secret           string
	Created, Rotated bool
}

// deliveriesPage is deliveries.html: a subscription's deliveries with
// the replay and recovery forms.
type deliveriesPage struct {
	Subscription client.Subscription
	Deliveries   []client.Delivery
	// Filter is the status shown ("" all), one of Statuses.
	Filter   string
	Statuses []string
	Next     string // the next page's portal URL
	Paged    bool
	// Back is this page's URL, where a retry comes back to.
	Back            string
	Replay, Recover replayForm
}

// deliveryPage is delivery.html: one delivery and its attempts.
type deliveryPage struct {
	Delivery client.Delivery
	Back     string
}

// eventTypesPage is event-types.html: the catalog.
type eventTypesPage struct{ Types []client.EventType }

// usagePage is budget.html: the tenant's limits, what it uses of them,
// and its API budget.
type usagePage struct {
	Limits []limitRow
	// Used is the requests spent in this window; ResetIn the seconds
	// until it ends.
	Used, ResetIn int
}

// eventsPage is events.html: the search and one page of events.
type eventsPage struct {
	Query   eventQuery
	Events  []client.EventSummary
	Catalog []client.EventType
	Next    string // the next page's portal URL
	Paged   bool
}

// eventPage is event.html: one event, its data indented, and its
// deliveries.
type eventPage struct {
	Event  client.EventDetail
	Pretty string
	Back   string
}

// jobsPage is jobs.html: the lookup by id and one page of jobs.
type jobsPage struct {
	ID     string
	Errors map[string]string
	Jobs   []job
	Next   string // the next page's cursor
	Paged  bool
}

// jobPage is job.html: one job's progress.
type jobPage struct{ Job job }
