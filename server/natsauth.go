package server

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// NATSAuth are the credentials of NATS. With an embedded server exposed
// (Config.NATSListen) one of them is required: the server then requires it
// of every client, webhookd's own connection included. With an external
// server (Config.NATSURL) they are what webhookd presents, beside any
// credentials in the URL. The zero value is no credentials.
type NATSAuth struct {
	// Token is a shared secret token.
	Token string
	// User and Password are a user's name and password.
	User, Password string
	// NkeySeedFile is a file holding a user's nkey seed ("SU..."): the
	// embedded server accepts its public key, and webhookd signs with it.
	NkeySeedFile string
	// TLSCert and TLSKey are the PEM files of the exposed embedded server's
	// certificate: its clients must then speak TLS (webhookd's own
	// in-process connection needs none).
	TLSCert, TLSKey string
}

// any reports whether a credential is set.
func (a NATSAuth) any() bool {
	return a.Token != "" || a.User != "" || a.Password != "" || a.NkeySeedFile != ""
}

// validate checks that the credentials are whole and, when listen is set,
// that there are some.
func (a NATSAuth) validate(listen string) error {
	n := 0
	if a.Token != "" {
		n++
	}
	if a.User != "" || a.Password != "" {
		if a.User == "" || a.Password == "" {
			return errors.New("nats credentials: a user needs a password and a password a user")
		}
		n++
	}
	if a.NkeySeedFile != "" {
		n++
	}
	if n > 1 {
		return errors.New("nats credentials: set one of a token, a user and password, or an nkey seed")
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		return errors.New("nats tls: a certificate needs its key and a key its certificate")
	}
	if listen != "" && n == 0 {
		return errors.New("an exposed embedded NATS server needs credentials: a token, a user and password, or an nkey seed")
	}
	return nil
}

// nkeySeed reads the nkey seed file and returns its key pair.
func (a NATSAuth) nkeySeed() (nkeys.KeyPair, error) {
	b, err := os.ReadFile(a.NkeySeedFile)
	if err != nil {
		return nil, fmt.Errorf("nats nkey seed: %w", err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(b))))
	if err != nil {
		return nil, fmt.Errorf("nats nkey seed %s: %w", a.NkeySeedFile, err)
	}
	return kp, nil
}

// serverOptions makes the embedded server require the credentials (and
// TLS, with a certificate), on every connection, in-process ones included.
func (a NATSAuth) serverOptions(opts *natsserver.Options) error {
	switch {
	case a.Token != "":
		opts.Authorization = a.Token
	case a.User != "":
		opts.Username, opts.Password = a.User, a.Password
	case a.NkeySeedFile != "":
		kp, err := a.nkeySeed()
		if err != nil {
			return err
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return fmt.Errorf("nats nkey seed %s: %w", a.NkeySeedFile, err)
		}
		opts.Nkeys = []*natsserver.NkeyUser{{Nkey: pub}}
	}
	if a.TLSCert != "" {
		tc, err := natsserver.GenTLSConfig(&natsserver.TLSConfigOpts{CertFile: a.TLSCert, KeyFile: a.TLSKey})
		if err != nil {
			return fmt.Errorf("nats tls: %w", err)
		}
		opts.TLSConfig, opts.TLS = tc, true
	}
	return nil
}

// clientOptions are the options that present the credentials.
func (a NATSAuth) clientOptions() ([]nats.Option, error) {
	switch {
	case a.Token != "":
		return []nats.Option{nats.Token(a.Token)}, nil
	case a.User != "":
		return []nats.Option{nats.UserInfo(a.User, a.Password)}, nil
	case a.NkeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(a.NkeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey seed: %w", err)
		}
		return []nats.Option{opt}, nil
	}
	return nil, nil
}

// redacted is what a credential prints as.
const redacted = "REDACTED"

// secretParams are the query parameters of a URL whose values are
// credentials.
var secretParams = []string{"token", "auth_token", "password", "pass", "secret", "nkey", "seed", "jwt", "creds"}

// RedactURLs returns a NATS URL, or a comma-separated list of them, with
// every credential replaced by REDACTED: the user information of each
// (user:password@, a token@) and the values of query parameters that
// carry one (?token=...). It is what logs and errors print.
func RedactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		parts[i] = redactURL(p)
	}
	return strings.Join(parts, ",")
}

func redactURL(raw string) string {
	s := strings.TrimSpace(raw)
	u, err := url.Parse(s)
	if err != nil || u.Host == "" && u.User == nil {
		// Not a URL it can read: everything before the last @ may be a
		// credential, and so may any query.
		if i := strings.LastIndex(s, "@"); i >= 0 {
			scheme := ""
			if j := strings.Index(s, "://"); j >= 0 && j < i {
				scheme = s[:j+3]
			}
			s = scheme + redacted + s[i:]
		}
		if i := strings.Index(s, "?"); i >= 0 {
			s = s[:i+1] + redacted
		}
		return s
	}
	if u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			u.User = url.UserPassword(u.User.Username(), redacted)
		} else {
			u.User = url.User(redacted) // a lone user is a token to nats
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for name := range q {
			for _, p := range secretParams {
				if strings.EqualFold(name, p) {
					q[name] = []string{redacted}
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}
