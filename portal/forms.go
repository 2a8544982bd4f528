package portal

import (
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// subscriptionForm is the create and edit form of a subscription: what
// the browser sent, and the problems to show beside each field.
type subscriptionForm struct {
	URL         string
	EventTypes  []string // checked catalog types
	Patterns    string   // other patterns, comma separated (ticket.*, *)
	Description string
	Metadata    string // key=value lines
	Ordering    string
	RateLimit   string
	Active      bool
	// ETag is the version the edit form was rendered from (If-Match).
	ETag string
	// Idem is the create form's one-time Idempotency-Key.
	Idem string
	// Errors are by form field; Problem is about the form as a whole.
	Errors  map[string]string
	Problem string
}

func readSubscriptionForm(r *http.Request) subscriptionForm {
	r.ParseForm()
	f := r.PostForm
	return subscriptionForm{
		URL:         strings.TrimSpace(f.Get("url")),
		EventTypes:  f["eventTypes"],
		Patterns:    strings.TrimSpace(f.Get("patterns")),
		Description: f.Get("description"),
		Metadata:    f.Get("metadata"),
		Ordering:    f.Get("ordering"),
		RateLimit:   strings.TrimSpace(f.Get("rateLimit")),
		Active:      f.Get("active") == "true",
		ETag:        f.Get("etag"),
		Idem:        f.Get("idem"),
	}
}

// formOf fills the edit form from a subscription.
func formOf(s subscription, etag string) subscriptionForm {
	f := subscriptionForm{URL: s.URL, Description: s.Description, Ordering: s.Ordering, Active: s.Active, ETag: etag}
	var patterns []string
	for _, t := range s.EventTypes {
		if strings.HasSuffix(t, "*") {
			patterns = append(patterns, t)
		} else {
			f.EventTypes = append(f.EventTypes, t)
		}
	}
	f.Patterns = strings.Join(patterns, ", ")
	keys := make([]string, 0, len(s.Metadata))
	for k := range s.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f.Metadata += k + "=" + s.Metadata[k] + "\n"
	}
	if s.RateLimit != nil {
		f.RateLimit = strconv.FormatFloat(*s.RateLimit, 'f', -1, 64)
	}
	return f
}

// Selected reports whether a catalog type is checked.
func (f subscriptionForm) Selected(t string) bool { return slices.Contains(f.EventTypes, t) }

// body turns the form into the API's JSON body. Only what JSON cannot
// carry is checked here (a metadata line without "=", a rate that is not
// a number); every rule about the values is the API's, whose field
// errors come back beside the fields.
func (f subscriptionForm) body(create bool) (map[string]any, []fieldError) {
	var problems []fieldError
	types := append([]string{}, f.EventTypes...)
	for _, p := range strings.FieldsFunc(f.Patterns, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		if !slices.Contains(types, p) {
			types = append(types, p)
		}
	}
	meta := map[string]string{}
	for i, line := range strings.Split(f.Metadata, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			problems = append(problems, fieldError{Field: "metadata", Reason: "line " + strconv.Itoa(i+1) + ": want key=value"})
			continue
		}
		meta[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	body := map[string]any{"url": f.URL, "eventTypes": types, "description": f.Description, "metadata": meta}
	if f.Ordering != "" {
		body["ordering"] = f.Ordering
	}
	switch {
	case f.RateLimit != "":
		rate, err := strconv.ParseFloat(f.RateLimit, 64)
		if err != nil {
			problems = append(problems, fieldError{Field: "rateLimit", Reason: "want a number of deliveries per second, or nothing"})
		}
		body["rateLimit"] = rate
	case !create:
		body["rateLimit"] = 0 // an emptied field removes the pace
	}
	if create {
		body["active"] = f.Active
	}
	return body, problems
}

// formField names the form field an API field error is about:
// "eventTypes[1]" → "eventTypes", "metadata[key]" → "metadata".
func formField(apiField string) string {
	if i := strings.IndexAny(apiField, "[."); i > 0 {
		return apiField[:i]
	}
	return apiField
}

// formFields are the fields the subscription form shows errors beside.
var formFields = []string{"url", "eventTypes", "description", "metadata", "ordering", "rateLimit", "active"}

func (f *subscriptionForm) setErrors(problems []fieldError) {
	if f.Errors == nil {
		f.Errors = map[string]string{}
	}
	for _, p := range problems {
		name := formField(p.Field)
		reason := p.Reason
		if p.Field != name {
			reason = p.Field + ": " + reason
		}
		if !slices.Contains(formFields, name) {
			f.Problem = strings.TrimSpace(f.Problem + " " + p.Field + ": " + p.Reason + ".")
			continue
		}
		if old := f.Errors[name]; old != "" {
			reason = old + "; " + reason
		}
		f.Errors[name] = reason
	}
}

// setAPIError shows an API error on the form: field errors beside their
// fields, anything else above the form.
func (f *subscriptionForm) setAPIError(ae *apiError) {
	fields := ae.fieldErrors()
	if len(fields) == 0 {
		f.Problem = ae.Message
		return
	}
	f.setErrors(fields)
}
