// Command e2e-franz drives the broker with franz-go (github.com/twmb/franz-go), unmodified and
// mostly with its defaults, for the end-to-end suite (e2e/broker/test_franz_go.py).
//
// Every subcommand prints JSON lines on stdout, bounds all it does by -timeout, and on failure
// prints "e2e-franz: <what>: <why>" on stderr and exits 1 (2 for bad usage).
//
//	e2e-franz produce -brokers B -topic T [-count N -keys K -value-size S | -stdin]
//	                  [-compression none|gzip|snappy|lz4|zstd] [-acks all|leader|none]
//	    Generated record i: key "k<i mod K>" (no key when K is 0), value "<i>|" padded to S bytes
//	    with a compressible filler. With -stdin, one record per input line:
//	    {"k": base64|null, "v": base64|null, "h": [[name, base64], ...]}.
//	    Prints {"i", "p", "o"} per record as it is acknowledged, then {"produced", ...}.
//	e2e-franz consume -brokers B -topic T (-group G | -partitions 0,1,...) [-count N]
//	    Reads from the start (or, in a group, from the committed offsets) until N records; with
//	    -count 0 until SIGTERM/SIGINT. Prints {"p", "o", "k", "v", "h", "ts"} per record,
//	    {"assigned": [...]} / {"revoked": [...]} / {"lost": [...]} on group changes, then
//	    {"consumed": n}. In a group, what was polled is committed after every poll and on revoke.
//	e2e-franz admin <op> -brokers B -topic T [...]   (see admin.go)
//
// Every subcommand also takes -tls-ca FILE (TLS, the broker's certificate checked against that PEM CA
// and its host name) and one of -sasl-plain USER:PASSWORD (SASL/PLAIN) and
// -sasl-scram SCRAM-SHA-256|SCRAM-SHA-512:USER:PASSWORD (SASL/SCRAM).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "produce":
		err = produce(args)
	case "consume":
		err = consume(args)
	case "admin":
		err = admin(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e-franz: %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: e2e-franz produce|consume|admin [flags] (see the top of main.go)")
	os.Exit(2)
}

// common holds the flags every subcommand takes.
type common struct {
	brokers string
	topic   string
	timeout time.Duration
	logLvl  string
	tlsCA   string
	sasl    string
	scram   string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.brokers, "brokers", "127.0.0.1:9092", "bootstrap brokers, comma separated")
	fs.StringVar(&c.topic, "topic", "", "topic")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "bound on the whole operation")
	fs.StringVar(&c.logLvl, "log", "warn", "franz-go log level on stderr: none, error, warn, info, debug")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "TLS: the PEM CA to check the broker's certificate against")
	fs.StringVar(&c.sasl, "sasl-plain", "", "SASL/PLAIN as USER:PASSWORD")
	fs.StringVar(&c.scram, "sasl-scram", "", "SASL/SCRAM as SCRAM-SHA-256|SCRAM-SHA-512:USER:PASSWORD")
}

// parse parses args and checks the common flags; exits 2 on bad usage.
func (c *common) parse(fs *flag.FlagSet, args []string) {
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
	if c.topic == "" {
		fmt.Fprintf(os.Stderr, "e2e-franz %s: -topic is required\n", fs.Name())
		os.Exit(2)
	}
}

func (c *common) clientOpts() ([]kgo.Opt, error) {
	levels := map[string]kgo.LogLevel{
		"none": kgo.LogLevelNone, "error": kgo.LogLevelError, "warn": kgo.LogLevelWarn,
		"info": kgo.LogLevelInfo, "debug": kgo.LogLevelDebug,
	}
	lvl, ok := levels[c.logLvl]
	if !ok {
		return nil, fmt.Errorf("unknown -log level %q", c.logLvl)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(c.brokers, ",")...),
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, lvl, nil)),
	}
	if c.tlsCA != "" {
		pem, err := os.ReadFile(c.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-tls-ca %s: no certificate in it", c.tlsCA)
		}
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	mechanism, err := c.saslMechanism()
	if err != nil {
		return nil, err
	}
	if mechanism != nil {
		opts = append(opts, kgo.SASL(mechanism))
	}
	return opts, nil
}

// saslMechanism is the SASL mechanism of -sasl-plain or -sasl-scram, nil for neither.
func (c *common) saslMechanism() (sasl.Mechanism, error) {
	switch {
	case c.sasl != "" && c.scram != "":
		return nil, fmt.Errorf("give at most one of -sasl-plain and -sasl-scram")
	case c.sasl != "":
		user, pass, ok := strings.Cut(c.sasl, ":")
		if !ok {
			return nil, fmt.Errorf("-sasl-plain: expected USER:PASSWORD")
		}
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case c.scram != "":
		mech, creds, _ := strings.Cut(c.scram, ":")
		user, pass, ok := strings.Cut(creds, ":")
		if !ok {
			return nil, fmt.Errorf("-sasl-scram: expected MECHANISM:USER:PASSWORD")
		}
		auth := scram.Auth{User: user, Pass: pass}
		switch mech {
		case "SCRAM-SHA-256":
			return auth.AsSha256Mechanism(), nil
		case "SCRAM-SHA-512":
			return auth.AsSha512Mechanism(), nil
		}
		return nil, fmt.Errorf("-sasl-scram: unknown mechanism %q (SCRAM-SHA-256 or SCRAM-SHA-512)", mech)
	}
	return nil, nil
}

// out writes one JSON line per call; callbacks of the client call it from other goroutines.
var out = struct {
	sync.Mutex
	enc *json.Encoder
}{enc: json.NewEncoder(os.Stdout)}

func emit(v any) {
	out.Lock()
	defer out.Unlock()
	if err := out.enc.Encode(v); err != nil {
		fmt.Fprintf(os.Stderr, "e2e-franz: writing stdout: %v\n", err)
		os.Exit(1)
	}
}

// keyValues is a repeatable name=value flag.
type keyValues map[string]string

func (kv keyValues) String() string { return fmt.Sprint(map[string]string(kv)) }

func (kv keyValues) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not name=value", s)
	}
	kv[k] = v
	return nil
}

// printedHeaders are a record's headers as printed: [[name, base64 value or null], ...].
func printedHeaders(hs []kgo.RecordHeader) [][2]any {
	printed := make([][2]any, 0, len(hs))
	for _, h := range hs {
		printed = append(printed, [2]any{h.Key, h.Value})
	}
	return printed
}

// -- produce -------------------------------------------------------------------------------------

func produce(args []string) error {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	var c common
	c.register(fs)
	count := fs.Int("count", 100, "records to generate")
	keys := fs.Int("keys", 10, "distinct keys of the generated records (0: no keys)")
	valueSize := fs.Int("value-size", 100, "size of each generated value")
	stdin := fs.Bool("stdin", false, "read the records from stdin (JSON lines) instead")
	codec := fs.String("compression", "snappy", "none, gzip, snappy, lz4 or zstd")
	acks := fs.String("acks", "all", "all, leader or none (not all: idempotence off)")
	linger := fs.Duration("linger", 10*time.Millisecond, "how long a batch may wait to fill")
	c.parse(fs, args)

	records, err := recordsToProduce(*stdin, *count, *keys, *valueSize)
	if err != nil {
		return err
	}
	opts, err := c.clientOpts()
	if err != nil {
		return err
	}
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	cc, ok := codecs[*codec]
	if !ok {
		return fmt.Errorf("unknown -compression %q", *codec)
	}
	opts = append(opts, kgo.DefaultProduceTopic(c.topic), kgo.ProducerBatchCompression(cc),
		kgo.ProducerLinger(*linger), kgo.RecordDeliveryTimeout(c.timeout))
	switch *acks {
	case "all": // franz-go's default: acks=all and the idempotent producer.
	case "leader":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "none":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	default:
		return fmt.Errorf("unknown -acks %q", *acks)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		failed   int
	)
	for i, r := range records {
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				failed++
				if firstErr == nil {
					firstErr = fmt.Errorf("record %d: %w", i, err)
				}
				mu.Unlock()
				return
			}
			emit(map[string]any{"i": i, "p": r.Partition, "o": r.Offset})
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if firstErr != nil {
		return fmt.Errorf("%d of %d records failed, first: %w", failed, len(records), firstErr)
	}
	emit(map[string]any{"produced": len(records), "compression": *codec, "acks": *acks,
		"idempotent": *acks == "all"})
	return nil
}

func recordsToProduce(stdin bool, count, keys, valueSize int) ([]*kgo.Record, error) {
	var records []*kgo.Record
	if !stdin {
		for i := range count {
			r := &kgo.Record{Value: generatedValue(i, valueSize)}
			if keys > 0 {
				r.Key = []byte("k" + strconv.Itoa(i%keys))
			}
			records = append(records, r)
		}
		return records, nil
	}
	dec := json.NewDecoder(os.Stdin)
	for {
		// []byte fields are base64 in JSON; null stays nil (a null key or value on the wire).
		var in struct {
			K []byte               `json:"k"`
			V []byte               `json:"v"`
			H [][2]json.RawMessage `json:"h"`
		}
		if err := dec.Decode(&in); errors.Is(err, io.EOF) {
			return records, nil
		} else if err != nil {
			return nil, fmt.Errorf("stdin record %d: %w", len(records), err)
		}
		r := &kgo.Record{Key: in.K, Value: in.V}
		for _, h := range in.H {
			var name string
			var value []byte
			if err := json.Unmarshal(h[0], &name); err != nil {
				return nil, fmt.Errorf("stdin record %d: header name: %w", len(records), err)
			}
			if err := json.Unmarshal(h[1], &value); err != nil {
				return nil, fmt.Errorf("stdin record %d: header value: %w", len(records), err)
			}
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: name, Value: value})
		}
		records = append(records, r)
	}
}

// generatedValue is "<i>|" then a compressible filler, size bytes in all (at least the prefix).
func generatedValue(i, size int) []byte {
	v := []byte(strconv.Itoa(i) + "|")
	for n := len(v); n < size; n++ {
		v = append(v, 'a'+byte(n%26))
	}
	return v
}

// -- consume -------------------------------------------------------------------------------------

func consume(args []string) error {
	fs := flag.NewFlagSet("consume", flag.ContinueOnError)
	var c common
	c.register(fs)
	group := fs.String("group", "", "consumer group (commits what it polls)")
	partitions := fs.String("partitions", "", "partitions to read directly, comma separated")
	count := fs.Int("count", 0, "stop after this many records (0: at SIGTERM/SIGINT)")
	c.parse(fs, args)
	if (*group == "") == (*partitions == "") {
		fmt.Fprintln(os.Stderr, "e2e-franz consume: give exactly one of -group and -partitions")
		os.Exit(2)
	}

	opts, err := c.clientOpts()
	if err != nil {
		return err
	}
	start := kgo.NewOffset().AtStart()
	var revoke struct { // a commit on revoke that failed, reported at the end
		sync.Mutex
		err error
	}
	if *group != "" {
		// Called from the client's group loop; ctx is the client's, canceled only at Close.
		report := func(what string) func(context.Context, *kgo.Client, map[string][]int32) {
			return func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				ps := append([]int32{}, m[c.topic]...) // [] rather than null when none
				slices.Sort(ps)
				emit(map[string]any{what: ps})
			}
		}
		opts = append(opts, kgo.ConsumerGroup(*group), kgo.ConsumeTopics(c.topic), kgo.ConsumeResetOffset(start),
			kgo.DisableAutoCommit(),
			kgo.OnPartitionsAssigned(report("assigned")),
			kgo.OnPartitionsLost(report("lost")),
			// Commit what was polled before the partitions go elsewhere, as the docs advise
			// when committing by hand, so the next owner does not read it again.
			kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
				if err := cl.CommitUncommittedOffsets(ctx); err != nil {
					revoke.Lock()
					revoke.err = errors.Join(revoke.err, fmt.Errorf("commit on revoke: %w", err))
					revoke.Unlock()
				}
				report("revoked")(ctx, cl, m)
			}))
	} else {
		offsets := map[int32]kgo.Offset{}
		for _, s := range strings.Split(*partitions, ",") {
			p, err := strconv.ParseInt(s, 10, 32)
			if err != nil {
				return fmt.Errorf("-partitions: %w", err)
			}
			offsets[int32(p)] = start
		}
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.topic: offsets}))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	deadline, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(deadline, syscall.SIGTERM, os.Interrupt)
	defer stop()

	consumed := 0
	for *count == 0 || consumed < *count {
		limit := -1
		if *count > 0 {
			limit = *count - consumed // never poll (and commit) more than asked for
		}
		fetches := cl.PollRecords(ctx, limit)
		if ctx.Err() != nil {
			break
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			fetchErr = errors.Join(fetchErr, fmt.Errorf("fetch %s-%d: %w", t, p, err))
		})
		if fetchErr != nil {
			return fetchErr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			emit(map[string]any{"p": r.Partition, "o": r.Offset, "k": r.Key, "v": r.Value,
				"h": printedHeaders(r.Headers), "ts": r.Timestamp.UnixMilli()})
			consumed++
		})
		if *group != "" && !fetches.Empty() {
			// Not ctx: a SIGTERM must not cut a commit short.
			if err := cl.CommitUncommittedOffsets(deadline); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
		}
	}
	if deadline.Err() != nil {
		if *count == 0 {
			return fmt.Errorf("no SIGTERM/SIGINT within %s (consumed %d records)", c.timeout, consumed)
		}
		return fmt.Errorf("consumed %d of %d records within %s", consumed, *count, c.timeout)
	}
	if *group != "" {
		// Done (count reached or a signal): a last commit, then leave the group so that a
		// successor need not wait out the session timeout.
		finish, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := cl.CommitUncommittedOffsets(finish); err != nil {
			return fmt.Errorf("final commit: %w", err)
		}
		if err := cl.LeaveGroupContext(finish); err != nil {
			return fmt.Errorf("leave group: %w", err)
		}
		revoke.Lock()
		defer revoke.Unlock()
		if revoke.err != nil {
			return revoke.err
		}
	}
	emit(map[string]any{"consumed": consumed})
	return nil
}
