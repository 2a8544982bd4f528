package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/onestack/webhooks/endpointauth"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/problem"
	"github.com/onestack/webhooks/subscriptions"
)

// Health.

func (a *API) healthz(w http.ResponseWriter, _ *http.Request, _ *caller) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if a.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if missing := a.cfg.Ready(ctx); len(missing) > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(unavailableRetryAfter))
			writeJSON(w, http.StatusServiceUnavailable, &Error{Code: CodeUnavailable,
				Message: "not ready: " + strings.Join(missing, "; "), Details: map[string]any{"missing": missing}})
			return nil
		}
	}
	ready := struct {
		Status    string   `json:"status"`
		NearLimit []string `json:"nearLimit,omitempty"`
	}{Status: "ready"}
	if a.cfg.NearLimit != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		ready.NearLimit = a.cfg.NearLimit(ctx)
	}
	writeJSON(w, http.StatusOK, ready)
	return nil
}

// Operator API.

type tenantView struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	RateLimit int64      `json:"rateLimit"`
	Limits    limitsView `json:"limits"`
	CreatedAt time.Time  `json:"createdAt"`
}

type keyView struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

// viewTenant shows a tenant with its effective limits.
func (a *API) viewTenant(t subscriptions.Tenant) tenantView {
	l := a.cfg.Store.LimitsOf(t)
	return tenantView{ID: t.ID, Name: t.Name, RateLimit: l.RequestsPerMinute, Limits: viewLimits(l), CreatedAt: t.CreatedAt}
}

func (a *API) createTenant(w http.ResponseWriter, r *http.Request, _ *caller) error {
	var in subscriptions.TenantInput
	if err := decode(w, r, a.cfg.MaxBody, &in); err != nil {
		return err
	}
	if err := a.cfg.Rules.Check(&in); err != nil {
		return err
	}
	t, key, k, err := a.cfg.Store.CreateTenant(r.Context(), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/admin/tenants/"+t.ID)
	writeJSON(w, http.StatusCreated, struct {
		tenantView
		APIKey keyView `json:"apiKey"`
	}{a.viewTenant(t), keyView{ID: k.ID, Key: string(key)}})
	return nil
}

// tenantID returns the {id} of an operator path, or a 404 for an id that
// cannot name a tenant.
func tenantID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !subscriptions.ValidTenantID(id) {
		return "", errNotFound("tenant")
	}
	return id, nil
}

func (a *API) getTenant(w http.ResponseWriter, r *http.Request, _ *caller) error {
	id, err := tenantID(r)
	if err != nil {
		return err
	}
	t, err := a.cfg.Store.LoadTenant(r.Context(), id)
	if err != nil {
		return tenantErr(err)
	}
	writeJSON(w, http.StatusOK, a.viewTenant(t))
	return nil
}

func tenantErr(err error) error {
	if errors.Is(err, subscriptions.ErrNotFound) {
		return errNotFound("tenant")
	}
	return err
}

func (a *API) patchTenant(w http.ResponseWriter, r *http.Request, _ *caller) error {
	id, err := tenantID(r)
	if err != nil {
		return err
	}
	if _, err := a.cfg.Store.LoadTenant(r.Context(), id); err != nil {
		return tenantErr(err)
	}
	var in subscriptions.TenantPatch
	if err := decode(w, r, a.cfg.MaxBody, &in); err != nil {
		return err
	}
	if err := a.cfg.Rules.Check(&in); err != nil {
		return err
	}
	t, err := a.cfg.Store.UpdateTenant(r.Context(), id, in)
	if err != nil {
		return tenantErr(err)
	}
	writeJSON(w, http.StatusOK, a.viewTenant(t))
	return nil
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request, _ *caller) error {
	id, err := tenantID(r)
	if err != nil {
		return err
	}
	key, k, err := a.cfg.Store.CreateKey(r.Context(), id)
	if err != nil {
		return tenantErr(err)
	}
	writeJSON(w, http.StatusCreated, keyView{ID: k.ID, Key: string(key)})
	return nil
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request, _ *caller) error {
	id, err := tenantID(r)
	if err != nil {
		return err
	}
	keyID := r.PathValue("keyId")
	if !subscriptions.ValidKeyID(keyID) {
		return errNotFound("api key")
	}
	if err := a.cfg.Store.RevokeKey(r.Context(), id, keyID); err != nil {
		if errors.Is(err, subscriptions.ErrNotFound) {
			return errNotFound("api key")
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Event types.

func catalogDocument(c events.Catalog) ([]byte, string) {
	b, _ := json.Marshal(map[string]any{"data": c})
	h := fnv.New64a()
	h.Write(b)
	return b, fmt.Sprintf(`"c%x"`, h.Sum64())
}

func (a *API) eventTypes(w http.ResponseWriter, r *http.Request, _ *caller) error {
	body, etag := catalogDocument(a.cfg.Catalog.Catalog())
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "private, max-age=0, must-revalidate")
	if etagMatches(r.Header.Get("If-None-Match"), etag, false) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
	return nil
}

// etagMatches compares an If-None-Match or If-Match header with etag;
// strong comparison refuses weak tags.
func etagMatches(header, etag string, strong bool) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		if strings.HasPrefix(t, "W/") {
			if strong {
				continue
			}
			t = t[2:]
		}
		if t == etag {
			return true
		}
	}
	return false
}

// Subscriptions.

type subscriptionView struct {
	ID             string            `json:"id"`
	URL            string            `json:"url"`
	EventTypes     []string          `json:"eventTypes"`
	Description    string            `json:"description"`
	Metadata       map[string]string `json:"metadata"`
	Active         bool              `json:"active"`
	DisabledReason *string           `json:"disabledReason"`
	RateLimit      *float64          `json:"rateLimit"`
	Ordering       string            `json:"ordering"`
	Filter         *string           `json:"filter"`
	HeaderNames    []string          `json:"headerNames"`
	CreatedAt      time.Time         `json:"createdAt"`
	UpdatedAt      time.Time         `json:"updatedAt"`
	// Backlog is how many of its deliveries are pending (not attempted
	// yet, or waiting for their next attempt); null while this replica's
	// delivery index cannot be read. A live count, which the ETag
	// covers (subscriptionETag) and If-Match ignores (revisionMatches).
	Backlog *int `json:"backlog"`
	// FailingSince is when the run of failed attempts began of an
	// endpoint found failing (subscription.failing was sent); absent
	// while it is healthy. Like the backlog, the ETag covers it.
	FailingSince *time.Time `json:"failingSince,omitempty"`
	Secret       string     `json:"secret,omitempty"`
	// SignatureScheme is "v1" (HMAC) or "v1a" (Ed25519).
	SignatureScheme string `json:"signatureScheme"`
	// SendTraceparent: whether its webhooks carry a traceparent header.
	SendTraceparent bool `json:"sendTraceparent"`
	// PublicKey is set, like Secret, only in a create's answer, with v1a.
	PublicKey string `json:"publicKey,omitempty"`
	// Auth is the endpoint authentication's type and non-secret parts;
	// null when there is none. Its secrets are write-only.
	Auth *endpointauth.Public `json:"auth"`
}

// withBacklog sets the backlog of the views, and when their endpoints
// are failing since (from this replica's copy of the health bucket).
func (a *API) withBacklog(ctx context.Context, tenant string, views ...*subscriptionView) {
	for _, v := range views {
		if h, ok := a.cfg.Store.EndpointHealth(tenant, v.ID); ok && h.Failing() {
			since := h.FirstFailure.UTC()
			v.FailingSince = &since
		}
	}
	if a.cfg.Deliveries == nil {
		return
	}
	for _, v := range views {
		if n, err := a.cfg.Deliveries.Backlog(ctx, tenant, v.ID); err == nil {
			v.Backlog = &n
		} else {
			a.cfg.Logger.Warn("count a subscription's backlog", "subscription", v.ID, "err", err)
		}
	}
}

func viewSubscription(s *subscriptions.Subscription) subscriptionView {
	v := subscriptionView{ID: s.ID, URL: s.URL, EventTypes: s.EventTypes, Description: s.Description,
		Metadata: s.Metadata, Active: s.Active, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
	if s.DisabledReason != "" {
		reason := s.DisabledReason
		v.DisabledReason = &reason
	}
	if v.Metadata == nil {
		v.Metadata = map[string]string{}
	}
	if s.RateLimit > 0 {
		pace := s.RateLimit
		v.RateLimit = &pace
	}
	v.Ordering = subscriptions.OrderingNone
	if s.Ordered() {
		v.Ordering = subscriptions.OrderingFIFO
	}
	v.Filter, v.HeaderNames = viewExtras(s)
	v.SignatureScheme = s.Scheme()
	v.Auth = s.AuthView()
	v.SendTraceparent = s.SendsTraceparent()
	return v
}

func etagOf(s *subscriptions.Subscription) string { return etagFor(s.Revision) }

// subscriptionETag is the strong ETag of a subscription at a store
// revision with its backlog: the revision alone while nothing waits, else
// the revision and the backlog ("12.b40"), so a cached copy is not
// revalidated with a stale backlog. If-Match compares the revision only
// (revisionMatches): the backlog moving does not fail a precondition.
func subscriptionETag(rev uint64, backlog *int) string {
	if backlog == nil || *backlog == 0 {
		return etagFor(rev)
	}
	return `"` + strconv.FormatUint(rev, 10) + ".b" + strconv.Itoa(*backlog) + `"`
}

// viewETag is subscriptionETag of a view, marked with when its endpoint
// has been failing, if it is ("12.b40.f1764752400"), so that a cached
// copy is not revalidated across the endpoint's failing or recovering.
func viewETag(rev uint64, v *subscriptionView) string {
	t := subscriptionETag(rev, v.Backlog)
	if v.FailingSince == nil {
		return t
	}
	return t[:len(t)-1] + ".f" + strconv.FormatInt(v.FailingSince.Unix(), 10) + `"`
}

// revisionMatches compares an If-Match header, strongly, with a
// subscription's revision: the revision part of each tag it lists.
func revisionMatches(header string, rev uint64) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		// "12.b40" is revision 12 with a backlog, "12.f1764752400" or
		// "12.b40.f1764752400" with a failing endpoint: compared as "12".
		for _, mark := range []string{".f", ".b"} {
			if i := strings.LastIndex(t, mark); i > 0 && strings.HasSuffix(t, `"`) && digits(t[i+2:len(t)-1]) {
				t = t[:i] + `"`
			}
		}
		if etagMatches(t, etagFor(rev), true) {
			return true
		}
	}
	return false
}

// digits reports whether s is one or more decimal digits.
func digits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// etagFor is the strong ETag of a store revision.
func etagFor(rev uint64) string { return `"` + strconv.FormatUint(rev, 10) + `"` }

// subscription reads one of the caller's subscriptions as stored now, so a
// create or change made through another replica is seen at once.
func (a *API) subscription(r *http.Request, c *caller, id string) (subscriptions.Subscription, error) {
	if !subscriptions.ValidSubscriptionID(id) {
		return subscriptions.Subscription{}, errNotFound("subscription")
	}
	s, err := a.cfg.Store.CurrentSubscription(r.Context(), c.tenant, id)
	if errors.Is(err, subscriptions.ErrNotFound) {
		return s, errNotFound("subscription")
	}
	return s, err
}

func (a *API) createSubscription(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in subscriptions.CreateInput
	if err := decode(w, r, a.cfg.MaxBody, &in); err != nil {
		return err
	}
	if err := a.cfg.Rules.Check(&in); err != nil {
		return err
	}
	s, err := a.cfg.Store.CreateSubscription(r.Context(), c.tenant, in)
	if err != nil {
		return err
	}
	v := viewSubscription(&s)
	v.Secret, v.PublicKey = s.Secret(), s.PublicKey()
	none := 0
	v.Backlog = &none
	w.Header().Set("Location", "/api/subscriptions/"+s.ID)
	w.Header().Set("ETag", etagOf(&s))
	writeJSON(w, http.StatusCreated, v)
	a.noticeUsage(c)
	return nil
}

// Pagination.

const (
	defaultPageSize = 50
	maxPageSize     = 100
	// maxBatch bounds the ids or events of one batch request.
	maxBatch      = 100
	cursorVersion = "v1:"
)

func encodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorVersion + id))
}

// decodeCursor returns the id a cursor points after.
func decodeCursor(c string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", false
	}
	id, ok := strings.CutPrefix(string(b), cursorVersion)
	return id, ok && events.ValidID(id)
}

// page reads limit and cursor.
func page(r *http.Request) (limit int, after string, err error) {
	q := r.URL.Query()
	limit = defaultPageSize
	if v := q.Get("limit"); v != "" {
		n, convErr := strconv.Atoi(v)
		if convErr != nil || n < 1 || n > maxPageSize {
			return 0, "", problem.Invalid("limit", "must be an integer from 1 to 100")
		}
		limit = n
	}
	if v := q.Get("cursor"); v != "" {
		id, ok := decodeCursor(v)
		if !ok {
			return 0, "", problem.Invalid("cursor", "is not a cursor this API returned")
		}
		after = id
	}
	return limit, after, nil
}

type listPage[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"nextCursor,omitempty"`
}

func (a *API) listSubscriptions(w http.ResponseWriter, r *http.Request, c *caller) error {
	limit, after, err := page(r)
	if err != nil {
		return err
	}
	subs, more := a.cfg.Store.Index().List(c.tenant, after, limit)
	out := listPage[subscriptionView]{Data: make([]subscriptionView, len(subs))}
	for i, s := range subs {
		out.Data[i] = viewSubscription(s)
		a.withBacklog(r.Context(), c.tenant, &out.Data[i])
	}
	if more {
		out.NextCursor = encodeCursor(subs[len(subs)-1].ID)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getSubscription(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.subscription(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	v := viewSubscription(&s)
	a.withBacklog(r.Context(), c.tenant, &v)
	etag := viewETag(s.Revision, &v)
	w.Header().Set("ETag", etag)
	if etagMatches(r.Header.Get("If-None-Match"), etag, false) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (a *API) patchSubscription(w http.ResponseWriter, r *http.Request, c *caller) error {
	cur, err := a.subscription(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	var in subscriptions.PatchInput
	if err := decode(w, r, a.cfg.MaxBody, &in); err != nil {
		return err
	}
	if err := a.cfg.Rules.CheckPatch(&in, &cur); err != nil {
		return err
	}
	// If-Match is compared, strongly, with the revision the store reads,
	// not with this replica's index, which may lag another replica's write.
	var precondition func(uint64) bool
	if h := r.Header.Get("If-Match"); h != "" {
		precondition = func(rev uint64) bool { return revisionMatches(h, rev) }
	}
	s, err := a.cfg.Store.UpdateSubscription(r.Context(), c.tenant, cur.ID, precondition, in.Apply)
	if errors.Is(err, subscriptions.ErrNotFound) {
		return errNotFound("subscription")
	}
	if err != nil {
		return err // ErrConflict answers 412 through writeError
	}
	v := viewSubscription(&s)
	a.withBacklog(r.Context(), c.tenant, &v)
	w.Header().Set("ETag", viewETag(s.Revision, &v))
	writeJSON(w, http.StatusOK, v)
	a.noticeUsage(c)
	return nil
}

func (a *API) deleteSubscription(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.subscription(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := a.cfg.Store.DeleteSubscription(r.Context(), c.tenant, s.ID); err != nil {
		if errors.Is(err, subscriptions.ErrNotFound) {
			return errNotFound("subscription")
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	a.noticeUsage(c)
	return nil
}

func (a *API) batchSubscriptions(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in struct {
		IDs []string `json:"ids"`
	}
	if err := decode(w, r, a.cfg.MaxBody, &in); err != nil {
		return err
	}
	if len(in.IDs) < 1 || len(in.IDs) > maxBatch {
		return problem.Invalid("ids", "must hold 1 to 100 ids")
	}
	out := struct {
		Data    []subscriptionView `json:"data"`
		Missing []string           `json:"missing"`
	}{Data: []subscriptionView{}, Missing: []string{}}
	for _, id := range in.IDs {
		if s, ok := a.cfg.Store.Index().Subscription(c.tenant, id); ok {
			v := viewSubscription(s)
			a.withBacklog(r.Context(), c.tenant, &v)
			out.Data = append(out.Data, v)
		} else {
			out.Missing = append(out.Missing, id)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getSecret(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.subscription(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, revealed(s.Scheme(), s.Revealed()))
	return nil
}

// revealed is the answer of a secret's read or rotation: {"secret"} with
// scheme v1, {"publicKey"} with v1a.
func revealed(scheme, key string) map[string]string {
	if scheme == subscriptions.SchemeV1a {
		return map[string]string{"publicKey": key}
	}
	return map[string]string{"secret": key}
}

func (a *API) rotateSecret(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.subscription(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	secret, err := a.cfg.Store.RotateSecret(r.Context(), c.tenant, s.ID)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, revealed(s.Scheme(), secret))
	return nil
}

func (a *API) testSubscription(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.subscription(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	id, err := a.cfg.Deliveries.SendTest(r.Context(), s)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"eventId": id})
	return nil
}

// Events.

type eventInput struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
	ID   *string         `json:"id"`
}

// event builds one input's envelope and lists its problems; item is its
// place in a batch, which names it in field errors ("events[3]."), or -1
// for the event of POST /api/events.
func (a *API) event(in eventInput, tenantID string, item int, now time.Time) (events.Event, []problem.FieldError) {
	e := events.Event{Type: in.Type, TenantID: tenantID, OccurredAt: now, Data: in.Data}
	if in.ID != nil {
		e.ID = *in.ID
	} else {
		e.ID = events.NewID()
	}
	var fields []problem.FieldError
	for _, p := range e.Problems(a.cfg.Catalog.Catalog()) {
		fields = append(fields, problem.FieldError{Field: itemPrefix(item) + p.Field, Reason: p.Err.Error()})
	}
	return e, fields
}

// batchInput is the body of POST /api/events/batch.
type batchInput struct {
	Events []eventInput `json:"events"`
}

// readEvents reads a publish body, the event of POST /api/events (batch
// false) or the events of a batch, and builds their envelopes once they
// pass the checks: the batch's size, each event's data against the
// tenant's eventBytes, then each envelope against the catalog.
//
// The usual body is read by eventBody or batchBody, which leave the
// data's JSON to the envelope's check (json.Valid) instead of checking it
// twice. Such a body may then not be JSON at all, which the decoder
// answers before any check: when a check refuses it, the body is decoded
// in full, and a decoding error is the answer.
func (a *API) readEvents(body []byte, batch bool, c *caller, now time.Time) ([]eventInput, []events.Event, error) {
	return a.readEventsWith(body, batch, true, c, now)
}

// readEventsWith is readEvents, with the fast path or without.
func (a *API) readEventsWith(body []byte, batch, fast bool, c *caller, now time.Time) ([]eventInput, []events.Event, error) {
	var ins []eventInput
	if fast {
		if batch {
			ins, fast = batchBody(body)
		} else if in, ok := eventBody(body); ok {
			ins, fast = []eventInput{in}, true
		} else {
			fast = false
		}
	}
	if !fast {
		var err error
		if ins, err = decodeEvents(body, batch); err != nil {
			return nil, nil, err
		}
	}
	evts, err := a.checkEvents(ins, batch, c, now)
	if err != nil && fast {
		if _, derr := decodeEvents(body, batch); derr != nil {
			return nil, nil, derr
		}
	}
	return ins, evts, err
}

// decodeEvents decodes a publish body with encoding/json.
func decodeEvents(body []byte, batch bool) ([]eventInput, error) {
	if batch {
		var in batchInput
		if err := decodeBytes(body, &in); err != nil {
			return nil, err
		}
		return in.Events, nil
	}
	var in eventInput
	if err := decodeBytes(body, &in); err != nil {
		return nil, err
	}
	return []eventInput{in}, nil
}

// checkEvents builds the envelopes of ins, or refuses them: a batch of
// other than 1 to 100, an event's data over eventBytes (the first), every
// envelope's problems.
func (a *API) checkEvents(ins []eventInput, batch bool, c *caller, now time.Time) ([]events.Event, error) {
	item := func(i int) int {
		if batch {
			return i
		}
		return -1
	}
	if batch && (len(ins) < 1 || len(ins) > maxBatch) {
		return nil, problem.Invalid("events", "must hold 1 to 100 events")
	}
	for i, in := range ins {
		if err := checkEventBytes(c, in.Data, item(i)); err != nil {
			return nil, err
		}
	}
	evts := make([]events.Event, len(ins))
	var fields []problem.FieldError
	for i, in := range ins {
		e, fe := a.event(in, c.tenant, item(i), now)
		evts[i] = e
		fields = append(fields, fe...)
	}
	if len(fields) > 0 {
		return nil, &problem.ValidationError{Fields: fields}
	}
	return evts, nil
}

func (a *API) publishEvent(w http.ResponseWriter, r *http.Request, c *caller) error {
	return a.publish(w, r, c, false)
}

func (a *API) publishEvents(w http.ResponseWriter, r *http.Request, c *caller) error {
	return a.publish(w, r, c, true)
}

// publish serves both publish routes: the event of POST /api/events
// (batch false), answered {"id"}, or the events of a batch, answered
// {"ids"}; a 503 names them in its details the same way (idsDetail).
func (a *API) publish(w http.ResponseWriter, r *http.Request, c *caller, batch bool) error {
	body, err := readRequired(w, r, a.cfg.MaxBody)
	if err != nil {
		return err
	}
	ins, evts, err := a.readEvents(body, batch, c, a.cfg.Now().UTC())
	if err != nil {
		return err
	}
	ids := make([]string, len(evts))
	for i, e := range evts {
		ids[i] = e.ID
	}
	fresh, err := a.unseen(r.Context(), c.tenant, ins, evts)
	if err != nil {
		key, v := idsDetail(batch, ids)
		return dedupeErr(err, key, v)
	}
	if len(fresh) > 0 {
		if err := a.checkStoredBytes(r.Context(), c, dataBytes(fresh)); err != nil {
			return err
		}
		if err := a.checkIntake(r.Context()); err != nil {
			return err
		}
		if err := a.cfg.Publisher.PublishEvents(r.Context(), true, fresh...); err != nil {
			key, v := idsDetail(batch, ids)
			return publishErr(err, key, v)
		}
	}
	if batch {
		writeBody(w, http.StatusAccepted, idsAnswer(ids))
	} else {
		writeBody(w, http.StatusAccepted, idAnswer(ids[0]))
	}
	return nil
}

// idsDetail is how a publish's error details name its events: "id" and
// the one of POST /api/events, "ids" and a batch's.
func idsDetail(batch bool, ids []string) (string, any) {
	if batch {
		return "ids", ids
	}
	return "id", ids[0]
}

// unseen returns the events of evts (made from ins) to publish: all but
// those whose producer-chosen id the tenant already published within the
// duplicate window, which are answered 202 as they were the first time
// without being published again. An id the server made is new. Repeats
// within evts are all returned: the event store's own window stores the
// first only.
func (a *API) unseen(ctx context.Context, tenant string, ins []eventInput, evts []events.Event) ([]events.Event, error) {
	if a.cfg.Duplicates == nil {
		return evts, nil
	}
	var ids []string
	var at []int
	for i, in := range ins {
		if in.ID != nil {
			ids, at = append(ids, evts[i].ID), append(at, i)
		}
	}
	if len(ids) == 0 {
		return evts, nil
	}
	seen, err := a.cfg.Duplicates.Seen(ctx, tenant, ids)
	if err != nil {
		return nil, err
	}
	skip := make(map[int]bool, len(ids))
	for j, s := range seen {
		if s {
			skip[at[j]] = true
		}
	}
	if len(skip) == 0 {
		return evts, nil
	}
	fresh := make([]events.Event, 0, len(evts)-len(skip))
	for i, e := range evts {
		if !skip[i] {
			fresh = append(fresh, e)
		}
	}
	return fresh, nil
}

// dataBytes is what evts add to their tenant's stored bytes, as the
// storedBytes limit counts them before they are stored: their data.
func dataBytes(evts []events.Event) int64 {
	var n int64
	for _, e := range evts {
		n += int64(len(e.Data))
	}
	return n
}

// dedupeErr answers a publish whose ids could not be checked against the
// duplicate window (the event index is behind or closed): 503 with the
// ids, nothing of the request stored, so a retry with the same ids is
// safe.
func dedupeErr(err error, key string, ids any) error {
	if !isUnavailable(err) {
		return err
	}
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: unavailableRetryAfter,
		Message: "the duplicate window of event ids cannot be checked now; nothing of this request was stored: retry with the same ids",
		Details: map[string]any{key: ids}, cause: err}
}

// storeNearLimitRetryAfter is the Retry-After, in seconds, of a publish
// refused because the event store is near its byte limit: it frees up as
// events age out or the operator raises the limit, not within seconds.
const storeNearLimitRetryAfter = 30

// checkIntake refuses a publish while the event store is past its
// high-water mark: 503 UNAVAILABLE with Retry-After, nothing of it
// published, so the room left is kept for what is already accepted and for
// keys, subscriptions, sessions and the attempt log.
func (a *API) checkIntake(ctx context.Context) error {
	if a.cfg.Intake == nil || !a.cfg.Intake.NearLimit(ctx) {
		return nil
	}
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: storeNearLimitRetryAfter,
		Message: "the event store is near its byte limit and takes no new events for now; nothing of this request was stored: retry later"}
}

// publishErr answers a publish the event store did not acknowledge: 503
// with the ids, since the events may or may not be stored and a retry
// carrying the same ids is deduplicated (delivered once).
func publishErr(err error, key string, ids any) error {
	if errors.Is(err, events.ErrStoreFull) {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: storeNearLimitRetryAfter,
			Message: "the event store is at its byte limit; events not acknowledged were not stored: retry later with the same ids, which are delivered once",
			Details: map[string]any{key: ids}, cause: err}
	}
	if !isUnavailable(err) {
		return err
	}
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: unavailableRetryAfter,
		Message: "the event store did not acknowledge in time; the events may or may not be stored: retry with the same ids, which are delivered once",
		Details: map[string]any{key: ids}, cause: err}
}
