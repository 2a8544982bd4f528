package portal

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The API's JSON, as the pages read it.

type eventType struct {
	Type        string `json:"type"`
	Description string `json:"description"`
}

type subscription struct {
	ID             string            `json:"id"`
	URL            string            `json:"url"`
	EventTypes     []string          `json:"eventTypes"`
	Description    string            `json:"description"`
	Metadata       map[string]string `json:"metadata"`
	Active         bool              `json:"active"`
	DisabledReason *string           `json:"disabledReason"`
	RateLimit      *float64          `json:"rateLimit"`
	Ordering       string            `json:"ordering"`
	Backlog        *int              `json:"backlog"`
	CreatedAt      time.Time         `json:"createdAt"`
	UpdatedAt      time.Time         `json:"updatedAt"`
	Secret         string            `json:"secret"`
	PublicKey      string            `json:"publicKey"`
	// What the API shows of the settings beyond the basics.
	Filter          *string    `json:"filter"`
	HeaderNames     []string   `json:"headerNames"`
	SignatureScheme string     `json:"signatureScheme"`
	SendTraceparent *bool      `json:"sendTraceparent"`
	Auth            *authView  `json:"auth"`
	FailingSince    *time.Time `json:"failingSince"`
}

// traceparent reports whether deliveries carry traceparent (the
// default when the API does not say).
func (s subscription) traceparent() bool { return s.SendTraceparent == nil || *s.SendTraceparent }

// authView is a subscription's endpoint authentication without secrets.
type authView struct {
	Type                 string     `json:"type"`
	TokenURL             string     `json:"tokenUrl"`
	ClientID             string     `json:"clientId"`
	Scopes               []string   `json:"scopes"`
	Audience             string     `json:"audience"`
	Subject              string     `json:"subject"`
	CertificateExpiresAt *time.Time `json:"certificateExpiresAt"`
}

type attempt struct {
	At           time.Time `json:"at"`
	StatusCode   *int      `json:"statusCode"`
	Error        *string   `json:"error"`
	DurationMs   int64     `json:"durationMs"`
	ResponseBody string    `json:"responseBody"`
	TraceID      string    `json:"traceId"`
}

type delivery struct {
	ID             string     `json:"id"`
	EventID        string     `json:"eventId"`
	EventType      string     `json:"eventType"`
	SubscriptionID string     `json:"subscriptionId"`
	Status         string     `json:"status"`
	Attempts       []attempt  `json:"attempts"`
	NextAttemptAt  *time.Time `json:"nextAttemptAt"`
	CreatedAt      time.Time  `json:"createdAt"`
}

type page[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"nextCursor"`
}

// pageSize is how many rows a portal list shows.
const pageSize = 20

// idPattern is what an id in a portal path may look like before it is
// handed to the API (which answers 404 for any id it does not know).
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

func pathID(rq *request) (string, error) {
	id := rq.r.PathValue("id")
	if !idPattern.MatchString(id) {
		return "", &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "no such resource"}
	}
	return id, nil
}

// Subscriptions.

func (p *Portal) listSubscriptions(rq *request) error {
	q := url.Values{"limit": {strconv.Itoa(pageSize)}}
	if c := rq.r.URL.Query().Get("cursor"); c != "" {
		q.Set("cursor", c)
	}
	var out page[subscription]
	if _, err := p.call(rq, "GET", "/api/subscriptions?"+q.Encode(), nil, &out); err != nil {
		return err
	}
	return p.render(rq, http.StatusOK, "subscriptions", "Subscriptions", "subscriptions", map[string]any{
		"Subscriptions": out.Data, "Next": out.NextCursor, "Paged": rq.r.URL.Query().Get("cursor") != ""})
}

func (p *Portal) catalog(rq *request) ([]eventType, error) {
	var out page[eventType]
	_, err := p.call(rq, "GET", "/api/event-types", nil, &out)
	return out.Data, err
}

func (p *Portal) newSubscription(rq *request) error {
	types, err := p.catalog(rq)
	if err != nil {
		return err
	}
	f := newForm()
	return p.render(rq, http.StatusOK, "subscription-form", "New subscription", "subscriptions", map[string]any{"Form": f, "Catalog": types})
}

func (p *Portal) createSubscription(rq *request) error {
	f := readSubscriptionForm(rq.r)
	body, problems := f.body(true)
	var created subscription
	var err error
	if len(problems) == 0 {
		// The form's one-time key makes a double submit create one
		// subscription: the API answers the repeat with the first answer.
		_, err = p.call(rq, "POST", "/api/subscriptions", body, &created, "Idempotency-Key", "portal-"+f.Idem)
	}
	var ae *apiError
	switch {
	case len(problems) > 0:
		f.setErrors(problems)
	case errors.As(err, &ae) && (ae.Status == http.StatusBadRequest || ae.Status == http.StatusConflict):
		f.setAPIError(ae)
		if ae.Status == http.StatusBadRequest {
			f.Idem = newToken() // the corrected form is a new request
		}
	case err != nil:
		return err
	default:
		return p.render(rq, http.StatusCreated, "secret", "Subscription created", "subscriptions", map[string]any{
			"Subscription": created, "Secret": cmp.Or(created.Secret, created.PublicKey), "Created": true})
	}
	f.forgetSecrets()
	types, err := p.catalog(rq)
	if err != nil {
		return err
	}
	return p.render(rq, http.StatusUnprocessableEntity, "subscription-form", "New subscription", "subscriptions", map[string]any{"Form": f, "Catalog": types})
}

// getSubscription reads one subscription and its ETag.
func (p *Portal) getSubscription(rq *request, id string) (subscription, string, error) {
	var s subscription
	ans, err := p.call(rq, "GET", "/api/subscriptions/"+id, nil, &s)
	if err != nil {
		return s, "", err
	}
	etag := ans.header.Get("ETag")
	if c, ok := p.cache.get(rq.ses.Tenant + " /api/subscriptions/" + id); ok {
		etag = c.etag
	}
	return s, etag, nil
}

func (p *Portal) showSubscription(rq *request) error {
	id, err := pathID(rq)
	if err != nil {
		return err
	}
	s, etag, err := p.getSubscription(rq, id)
	if err != nil {
		return err
	}
	return p.subscriptionPage(rq, http.StatusOK, s, formOf(s, etag), replayForm{})
}

func (p *Portal) subscriptionPage(rq *request, status int, s subscription, f subscriptionForm, rf replayForm) error {
	types, err := p.catalog(rq)
	if err != nil {
		return err
	}
	return p.render(rq, status, "subscription", s.ID, "subscriptions", map[string]any{
		"Subscription": s, "Form": f, "Catalog": types, "Replay": rf})
}

func (p *Portal) updateSubscription(rq *request) error {
	id, err := pathID(rq)
	if err != nil {
		return err
	}
	f := readSubscriptionForm(rq.r)
	body, problems := f.body(false)
	var hdr []string
	if f.ETag != "" {
		hdr = []string{"If-Match", f.ETag}
	}
	var ae *apiError
	if len(problems) == 0 {
		_, err = p.call(rq, "PATCH", "/api/subscriptions/"+id, body, nil, hdr...)
		if err == nil {
			return p.redirect(rq, "/portal/subscriptions/"+id, "Saved.")
		}
		if !errors.As(err, &ae) || (ae.Status != http.StatusBadRequest && ae.Status != http.StatusPreconditionFailed) {
			return err
		}
	}
	s, etag, err := p.getSubscription(rq, id)
	if err != nil {
		return err
	}
	if ae != nil && ae.Status == http.StatusPreconditionFailed {
		rq.flash = "Not saved: the subscription was changed elsewhere since you opened this page. This is the current version; make your change again."
		return p.subscriptionPage(rq, http.StatusConflict, s, formOf(s, etag), replayForm{})
	}
	f.ETag = etag
	f.forgetSecrets()
	f.HeaderNames, f.CurrentAuth = s.HeaderNames, s.Auth
	if ae != nil {
		f.setAPIError(ae)
	} else {
		f.setErrors(problems)
	}
	return p.subscriptionPage(rq, http.StatusUnprocessableEntity, s, f, replayForm{})
}

func (p *Portal) setActive(rq *request) error {
	id, err := pathID(rq)
	if err != nil {
		return err
	}
	active := rq.r.PostFormValue("active") == "true"
	if _, err := p.call(rq, "PATCH", "/api/subscriptions/"+id, map[string]bool{"active": active}, nil); err != nil {
		return err
	}
	msg := "Paused: events are kept as skipped deliveries until you resume."
	if active {
		msg = "Resumed: new events are delivered again."
	}
	return p.redirect(rq, "/portal/subscriptions/"+id, msg)
}

func (p *Portal) deleteSubscription(rq *request) error {
	id, err := pathID(rq)
	if err != nil {
		return err
	}
	if _, err := p.call(rq, "DELETE", "/api/subscriptions/"+id, nil, nil); err != nil {
		return err
	}
	return p.redirect(rq, "/portal/subscriptions", "Deleted "+id+".")
}

func (p *Portal) showSecret(rq *request) error {
	id, err := pathID(rq)
	if err != nil {
		return err
	}
	s, _, err := p.getSubscription(rq, id)
	if err != nil {
		return err
	}
	var out struct {
		Secret    string `json:"secret"`
		PublicKey string `json:"publicKey"` // in place of secret with signatureScheme v1a
	}
	if _, err := p.call(rq, "GET", "/api/subscriptions/"+id+"/secret", nil, &out); err != nil {
		return err
	}
	return p.render(rq, http.StatusOK, "secret", "Signing secret", "subscriptions", map[string]any{"Subscription": s, "Secret": cmp.Or(out.Secret, out.PublicKey)})
}

func (p *Portal) rotateSecret(rq *request) error {
	id, err := pathID(rq)
	if err != nil {
		return err
	}
	var out struct {
		Secret    string `json:"secret"`
		PublicKey string `json:"publicKey"` // in place of secret with signatureScheme v1a
	}
	if _, err := p.call(rq, "POST", "/api/subscriptions/"+id+"/rotate-secret", nil, &out); err != nil {
		return err
	}
	s, _, err := p.getSubscription(rq, id)
	if err != nil {
		return err
	}
	return p.render(rq, http.StatusOK, "secret", "Signing secret", "subscriptions", map[string]any{"Subscription": s, "Secret": cmp.Or(out.Secret, out.PublicKey), "Rotated": true})
}

func (p *Portal) sendTest(rq *request) error {
	id, err := pathID(rq)
	if err != nil {
		return err
	}
	var out struct {
		EventID string `json:"eventId"`
	}
	if _, err := p.call(rq, "POST", "/api/subscriptions/"+id+"/test", nil, &out); err != nil {
		return err
	}
	return p.redirect(rq, "/portal/subscriptions/"+id+"/deliveries", "Test event "+out.EventID+" sent.")
}

// replayForm is the replay form's value and errors.
type replayForm struct {
	Since, Until string
	// Status is what a recovery resends: failed ("") or skipped.
	Status string
	Errors map[string]string
}

// readReplayForm reads a replay's or a recovery's time range (and the
// recovery's status) as posted.
func readReplayForm(r *http.Request) replayForm {
	return replayForm{Since: strings.TrimSpace(r.PostFormValue("since")), Until: strings.TrimSpace(r.PostFormValue("until")),
		Status: r.PostFormValue("status"), Errors: map[string]string{}}
}

// body is the range as the API takes it; a time that does not parse is
// an error at its field instead.
func (rf *replayForm) body() map[string]string {
	body := map[string]string{}
	for name, v := range map[string]string{"since": rf.Since, "until": rf.Until} {
		if v == "" {
			continue
		}
		if t, ok := parseFormTime(v); ok {
			body[name] = t
		} else {
			rf.Errors[name] = "want a date and time, such as 2026-01-31T09:30 (UTC) or RFC 3339"
		}
	}
	return body
}

// refused puts the API's 400 beside the form's fields (on since when it
// names none); any other error is returned.
func (rf *replayForm) refused(err error) error {
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		return err
	}
	for _, fe := range ae.fieldErrors() {
		rf.Errors[formField(fe.Field)] = fe.Reason
	}
	if len(rf.Errors) == 0 {
		rf.Errors["since"] = ae.Message
	}
	return nil
}

// timeLayouts are accepted in the replay form: RFC 3339, or what a
// datetime-local input sends (read as UTC).
var timeLayouts = []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04"}

func parseFormTime(s string) (string, bool) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC().Format(time.RFC3339), true
		}
	}
	return "", false
}

func (p *Portal) replay(rq *request) error {
	id, err := pathID(rq)
	if err != nil {
		return err
	}
	rf := readReplayForm(rq.r)
	body := rf.body()
	if len(rf.Errors) == 0 {
		var out struct {
			Replayed int    `json:"replayed"`
			JobID    string `json:"jobId"`
		}
		_, err = p.call(rq, "POST", "/api/subscriptions/"+id+"/replay", body, &out)
		if err == nil && out.JobID != "" {
			return p.redirect(rq, "/portal/jobs/"+out.JobID, "Replay running in the background as job "+out.JobID+".")
		}
		if err == nil {
			return p.redirect(rq, "/portal/subscriptions/"+id+"/deliveries", fmt.Sprintf("Replay queued: %d events will be delivered again.", out.Replayed))
		}
		if err := rf.refused(err); err != nil {
			return err
		}
	}
	return p.deliveriesPage(rq, id, http.StatusUnprocessableEntity, rf)
}

// Deliveries.

var deliveryStatuses = []string{"pending", "succeeded", "failed", "skipped"}

func (p *Portal) listDeliveries(rq *request) error {
	id, err := pathID(rq)
	if err != nil {
		return err
	}
	return p.deliveriesPage(rq, id, http.StatusOK, replayForm{})
}

func (p *Portal) deliveriesPage(rq *request, id string, status int, rf replayForm) error {
	return p.deliveriesPageWith(rq, id, status, rf, replayForm{})
}

// deliveriesPageWith is the deliveries page with the replay form rf and
// the recovery form cf as they were sent.
func (p *Portal) deliveriesPageWith(rq *request, id string, status int, rf, cf replayForm) error {
	s, _, err := p.getSubscription(rq, id)
	if err != nil {
		return err
	}
	in := rq.r.URL.Query()
	q := url.Values{"limit": {strconv.Itoa(pageSize)}}
	filter := in.Get("status")
	if filter != "" {
		q.Set("status", filter)
	}
	if c := in.Get("cursor"); c != "" {
		q.Set("cursor", c)
	}
	var out page[delivery]
	if _, err := p.call(rq, "GET", "/api/subscriptions/"+id+"/deliveries?"+q.Encode(), nil, &out); err != nil {
		return err
	}
	next := ""
	if out.NextCursor != "" {
		nq := url.Values{"cursor": {out.NextCursor}}
		if filter != "" {
			nq.Set("status", filter)
		}
		next = "/portal/subscriptions/" + id + "/deliveries?" + nq.Encode()
	}
	return p.render(rq, status, "deliveries", "Deliveries", "subscriptions", map[string]any{
		"Subscription": s, "Deliveries": out.Data, "Filter": filter, "Statuses": deliveryStatuses,
		"Next": next, "Paged": in.Get("cursor") != "", "Back": rq.r.URL.RequestURI(), "Replay": rf, "Recover": cf})
}

func (p *Portal) showDelivery(rq *request) error {
	id, err := pathID(rq)
	if err != nil {
		return err
	}
	var d delivery
	if _, err := p.call(rq, "GET", "/api/deliveries/"+id, nil, &d); err != nil {
		return err
	}
	return p.render(rq, http.StatusOK, "delivery", d.ID, "subscriptions", map[string]any{"Delivery": d, "Back": rq.r.URL.RequestURI()})
}

func (p *Portal) retryDelivery(rq *request) error {
	id, err := pathID(rq)
	if err != nil {
		return err
	}
	var d delivery
	if _, err := p.call(rq, "POST", "/api/deliveries/"+id+"/retry", nil, &d); err != nil {
		return err
	}
	back := safeNext(rq.r.PostFormValue("back"))
	if back == "/portal/subscriptions" {
		back = "/portal/deliveries/" + id
	}
	return p.redirect(rq, back, "Retry of "+id+" sent: one more attempt is being made now.")
}

// Catalog and budget.

func (p *Portal) eventTypes(rq *request) error {
	types, err := p.catalog(rq)
	if err != nil {
		return err
	}
	return p.render(rq, http.StatusOK, "event-types", "Event types", "event-types", map[string]any{"Types": types})
}
