package portal

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/onestack/webhooks/client"
)

// pageSize is how many rows a portal list shows.
const pageSize = 20

// idPattern is what an id in a portal path may look like before it is
// handed to the API (which answers 404 for any id it does not know).
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

// handleID registers a page about one resource, named by the {id} in its
// pattern: an id that cannot be one is a not-found page, and the API is
// not asked.
func (p *Portal) handleID(pattern string, h func(rq *request, id string) error) {
	p.handle(pattern, func(rq *request) error {
		id := rq.r.PathValue("id")
		if !idPattern.MatchString(id) {
			return &client.Error{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "no such resource"}
		}
		return h(rq, id)
	})
}

// Subscriptions.

func (p *Portal) listSubscriptions(rq *request) error {
	cursor := rq.r.URL.Query().Get("cursor")
	subs, next, err := rq.api.Subscriptions(rq.ctx(), pageSize, cursor)
	if err != nil {
		return err
	}
	return p.render(rq, http.StatusOK, "subscriptions", "Subscriptions", "subscriptions",
		subscriptionsPage{Subscriptions: subs, Next: next, Paged: cursor != ""})
}

func (p *Portal) newSubscription(rq *request) error {
	types, err := rq.api.EventTypes(rq.ctx())
	if err != nil {
		return err
	}
	return p.render(rq, http.StatusOK, "subscription-form", "New subscription", "subscriptions", subscriptionFormPage{Form: newForm(), Catalog: types})
}

func (p *Portal) createSubscription(rq *request) error {
	f := readSubscriptionForm(rq.r)
	body, problems := f.newSubscription()
	var created client.Subscription
	var err error
	if len(problems) == 0 {
		// The form's one-time key makes a double submit create one
		// subscription: the API answers the repeat with the first answer.
		created, err = rq.api.CreateSubscriptionOnce(rq.ctx(), "portal-"+f.Idem, body)
	}
	var ae *client.Error
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
		return p.render(rq, http.StatusCreated, "secret", "Subscription created", "subscriptions",
			secretPage{Subscription: created, Secret: cmp.Or(created.Secret, created.PublicKey), Created: true})
	}
	f.forgetSecrets()
	types, err := rq.api.EventTypes(rq.ctx())
	if err != nil {
		return err
	}
	return p.render(rq, http.StatusUnprocessableEntity, "subscription-form", "New subscription", "subscriptions", subscriptionFormPage{Form: f, Catalog: types})
}

func (p *Portal) showSubscription(rq *request, id string) error {
	s, etag, err := rq.api.SubscriptionWithETag(rq.ctx(), id)
	if err != nil {
		return err
	}
	return p.renderSubscription(rq, http.StatusOK, s, formOf(s, etag))
}

// renderSubscription renders a subscription's page with the edit form f.
func (p *Portal) renderSubscription(rq *request, status int, s client.Subscription, f subscriptionForm) error {
	types, err := rq.api.EventTypes(rq.ctx())
	if err != nil {
		return err
	}
	return p.render(rq, status, "subscription", s.ID, "subscriptions", subscriptionPage{Subscription: s, Form: f, Catalog: types})
}

func (p *Portal) updateSubscription(rq *request, id string) error {
	f := readSubscriptionForm(rq.r)
	body, problems := f.patch()
	var ae *client.Error
	if len(problems) == 0 {
		_, err := rq.api.UpdateSubscriptionIfMatch(rq.ctx(), id, f.ETag, body)
		if err == nil {
			return p.redirect(rq, "/portal/subscriptions/"+id, "Saved.")
		}
		if !errors.As(err, &ae) || (ae.Status != http.StatusBadRequest && ae.Status != http.StatusPreconditionFailed) {
			return err
		}
	}
	s, etag, err := rq.api.SubscriptionWithETag(rq.ctx(), id)
	if err != nil {
		return err
	}
	if ae != nil && ae.Status == http.StatusPreconditionFailed {
		rq.flash = "Not saved: the subscription was changed elsewhere since you opened this page. This is the current version; make your change again."
		return p.renderSubscription(rq, http.StatusConflict, s, formOf(s, etag))
	}
	f.ETag = etag
	f.forgetSecrets()
	f.HeaderNames, f.CurrentAuth = s.HeaderNames, s.Auth
	if ae != nil {
		f.setAPIError(ae)
	} else {
		f.setErrors(problems)
	}
	return p.renderSubscription(rq, http.StatusUnprocessableEntity, s, f)
}

func (p *Portal) setActive(rq *request, id string) error {
	active := rq.r.PostFormValue("active") == "true"
	if _, err := rq.api.UpdateSubscription(rq.ctx(), id, client.SubscriptionPatch{Active: &active}); err != nil {
		return err
	}
	msg := "Paused: events are kept as skipped deliveries until you resume."
	if active {
		msg = "Resumed: new events are delivered again."
	}
	return p.redirect(rq, "/portal/subscriptions/"+id, msg)
}

func (p *Portal) deleteSubscription(rq *request, id string) error {
	if err := rq.api.DeleteSubscription(rq.ctx(), id); err != nil {
		return err
	}
	return p.redirect(rq, "/portal/subscriptions", "Deleted "+id+".")
}

func (p *Portal) showSecret(rq *request, id string) error {
	s, err := rq.api.Subscription(rq.ctx(), id)
	if err != nil {
		return err
	}
	secret, err := rq.api.Secret(rq.ctx(), id)
	if err != nil {
		return err
	}
	return p.render(rq, http.StatusOK, "secret", "Signing secret", "subscriptions", secretPage{Subscription: s, Secret: secret})
}

func (p *Portal) rotateSecret(rq *request, id string) error {
	secret, err := rq.api.RotateSecret(rq.ctx(), id)
	if err != nil {
		return err
	}
	s, err := rq.api.Subscription(rq.ctx(), id)
	if err != nil {
		return err
	}
	return p.render(rq, http.StatusOK, "secret", "Signing secret", "subscriptions", secretPage{Subscription: s, Secret: secret, Rotated: true})
}

func (p *Portal) sendTest(rq *request, id string) error {
	eventID, err := rq.api.SendTest(rq.ctx(), id)
	if err != nil {
		return err
	}
	return p.redirect(rq, "/portal/subscriptions/"+id+"/deliveries", "Test event "+eventID+" sent.")
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

// times is the range as the API takes it (zero: not given); a time that
// does not parse is an error at its field instead.
func (rf *replayForm) times() (since, until time.Time) {
	return formTime(rf.Since, "since", rf.Errors), formTime(rf.Until, "until", rf.Errors)
}

// formTime reads a time field of a form: zero when empty, and when it
// does not parse, zero with the problem in errs under name.
func formTime(v, name string, errs map[string]string) time.Time {
	if v == "" {
		return time.Time{}
	}
	t, ok := parseFormTime(v)
	if !ok {
		errs[name] = "want a date and time, such as 2026-01-31T09:30 (UTC) or RFC 3339"
	}
	return t
}

// refused puts the API's 400 beside the form's fields (on since when it
// names none); any other error is returned.
func (rf *replayForm) refused(err error) error {
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		return err
	}
	for _, fe := range ae.Fields() {
		rf.Errors[formField(fe.Field)] = fe.Reason
	}
	if len(rf.Errors) == 0 {
		rf.Errors["since"] = apiMessage(ae)
	}
	return nil
}

// timeLayouts are accepted in the replay form: RFC 3339, or what a
// datetime-local input sends (read as UTC).
var timeLayouts = []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04"}

// parseFormTime reads a form's time to the second, in UTC.
func parseFormTime(s string) (time.Time, bool) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC().Truncate(time.Second), true
		}
	}
	return time.Time{}, false
}

func (p *Portal) replay(rq *request, id string) error {
	rf := readReplayForm(rq.r)
	since, until := rf.times()
	if len(rf.Errors) == 0 {
		out, err := rq.api.StartReplay(rq.ctx(), id, since, until)
		if err == nil && out.JobID != "" {
			return p.redirect(rq, "/portal/jobs/"+out.JobID, "Replay running in the background as job "+out.JobID+".")
		}
		if err == nil {
			return p.redirect(rq, "/portal/subscriptions/"+id+"/deliveries", fmt.Sprintf("Replay queued: %d events will be delivered again.", out.Count))
		}
		if err := rf.refused(err); err != nil {
			return err
		}
	}
	return p.renderDeliveries(rq, id, http.StatusUnprocessableEntity, rf, replayForm{})
}

// Deliveries.

var deliveryStatuses = []string{"pending", "succeeded", "failed", "skipped"}

func (p *Portal) listDeliveries(rq *request, id string) error {
	return p.renderDeliveries(rq, id, http.StatusOK, replayForm{}, replayForm{})
}

// renderDeliveries renders the deliveries page with the replay form rf
// and the recovery form cf as they were sent.
func (p *Portal) renderDeliveries(rq *request, id string, status int, rf, cf replayForm) error {
	s, err := rq.api.Subscription(rq.ctx(), id)
	if err != nil {
		return err
	}
	in := rq.r.URL.Query()
	q := client.DeliveryQuery{Status: in.Get("status"), Limit: pageSize, Cursor: in.Get("cursor")}
	deliveries, cursor, err := rq.api.Deliveries(rq.ctx(), id, q)
	if err != nil {
		return err
	}
	next := ""
	if cursor != "" {
		nq := url.Values{"cursor": {cursor}}
		if q.Status != "" {
			nq.Set("status", q.Status)
		}
		next = "/portal/subscriptions/" + id + "/deliveries?" + nq.Encode()
	}
	return p.render(rq, status, "deliveries", "Deliveries", "subscriptions", deliveriesPage{
		Subscription: s, Deliveries: deliveries, Filter: q.Status, Statuses: deliveryStatuses,
		Next: next, Paged: q.Cursor != "", Back: rq.r.URL.RequestURI(), Replay: rf, Recover: cf})
}

func (p *Portal) showDelivery(rq *request, id string) error {
	d, err := rq.api.Delivery(rq.ctx(), id)
	if err != nil {
		return err
	}
	return p.render(rq, http.StatusOK, "delivery", d.ID, "subscriptions", deliveryPage{Delivery: d, Back: rq.r.URL.RequestURI()})
}

func (p *Portal) retryDelivery(rq *request, id string) error {
	if _, err := rq.api.RetryDelivery(rq.ctx(), id); err != nil {
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
	types, err := rq.api.EventTypes(rq.ctx())
	if err != nil {
		return err
	}
	return p.render(rq, http.StatusOK, "event-types", "Event types", "event-types", eventTypesPage{Types: types})
}
