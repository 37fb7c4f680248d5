package main

// e2e-franz admin <op> -brokers B -topic T [...]: one kadm call per run, its result as one JSON line.
//
//	create-topic -partitions N [-config name=value ...]
//	    {"topic", "id", "partitions", "replication_factor", "configs": {name: value}}
//	describe-topic
//	    {"topic", "id", "partitions": [{"p", "leader", "leader_epoch", "replicas", "isr"}]}, or
//	    {"topic", "error": "<KAFKA_ERROR_NAME>"}: a missing topic is a state to observe, not a failure
//	describe-configs
//	    {"topic", "configs": {name: {"value", "source", "sensitive"}}}
//	alter-configs [-set name=value ...] [-delete name ...]   (IncrementalAlterConfigs)
//	    {"topic", "altered": [names]}
//	add-partitions -count N
//	    {"topic", "added": N}
//	list-offsets
//	    {"topic", "partitions": [{"p", "start", "end"}]}
//	delete-topic
//	    {"topic", "deleted": true}

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// names is a repeatable string flag.
type names []string

func (n *names) String() string     { return fmt.Sprint(*n) }
func (n *names) Set(s string) error { *n = append(*n, s); return nil }

func admin(args []string) error {
	if len(args) == 0 {
		usage()
	}
	op := args[0]
	fs := flag.NewFlagSet("admin "+op, flag.ContinueOnError)
	var c common
	c.register(fs)
	partitions := fs.Int("partitions", 1, "create-topic: partitions")
	count := fs.Int("count", 1, "add-partitions: how many to add")
	configs := keyValues{}
	fs.Var(configs, "config", "create-topic: topic config name=value (repeatable)")
	set := keyValues{}
	fs.Var(set, "set", "alter-configs: set name=value (repeatable)")
	var del names
	fs.Var(&del, "delete", "alter-configs: delete (reset to default) name (repeatable)")
	c.parse(fs, args[1:])

	opts, err := c.clientOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()

	switch op {
	case "create-topic":
		cfg := map[string]*string{}
		for k, v := range configs {
			cfg[k] = &v
		}
		r, err := adm.CreateTopic(ctx, int32(*partitions), 1, cfg, c.topic)
		if err != nil {
			return withMessage(err, r.ErrMessage)
		}
		got := map[string]any{}
		for name, cfg := range r.Configs {
			got[name] = cfg.Value
		}
		emit(map[string]any{"topic": r.Topic, "id": r.ID, "partitions": r.NumPartitions,
			"replication_factor": r.ReplicationFactor, "configs": got})
	case "describe-topic":
		details, err := adm.ListTopics(ctx, c.topic)
		if err != nil {
			return err
		}
		d, ok := details[c.topic]
		if !ok {
			return fmt.Errorf("topic %s not in the metadata response", c.topic)
		}
		if d.Err != nil {
			emit(map[string]any{"topic": c.topic, "error": errorName(d.Err)})
			return nil
		}
		var ps []map[string]any
		for _, p := range d.Partitions.Sorted() {
			if p.Err != nil {
				return fmt.Errorf("partition %d: %w", p.Partition, p.Err)
			}
			ps = append(ps, map[string]any{"p": p.Partition, "leader": p.Leader, "leader_epoch": p.LeaderEpoch,
				"replicas": p.Replicas, "isr": p.ISR})
		}
		emit(map[string]any{"topic": c.topic, "id": d.ID, "partitions": ps})
	case "describe-configs":
		rcs, err := adm.DescribeTopicConfigs(ctx, c.topic)
		if err != nil {
			return err
		}
		rc, err := rcs.On(c.topic, nil)
		if err == nil {
			err = withMessage(rc.Err, rc.ErrMessage)
		}
		if err != nil {
			return err
		}
		got := map[string]any{}
		for _, cfg := range rc.Configs {
			got[cfg.Key] = map[string]any{"value": cfg.Value, "source": cfg.Source.String(), "sensitive": cfg.Sensitive}
		}
		emit(map[string]any{"topic": c.topic, "configs": got})
	case "alter-configs":
		var alters []kadm.AlterConfig
		var altered []string
		for k, v := range set {
			alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
			altered = append(altered, k)
		}
		for _, k := range del {
			alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
			altered = append(altered, k)
		}
		rs, err := adm.AlterTopicConfigs(ctx, alters, c.topic)
		if err != nil {
			return err
		}
		r, err := rs.On(c.topic, nil)
		if err == nil {
			err = withMessage(r.Err, r.ErrMessage)
		}
		if err != nil {
			return err
		}
		slices.Sort(altered)
		emit(map[string]any{"topic": c.topic, "altered": altered})
	case "add-partitions":
		rs, err := adm.CreatePartitions(ctx, *count, c.topic)
		if err != nil {
			return err
		}
		r, err := rs.On(c.topic, nil)
		if err == nil {
			err = withMessage(r.Err, r.ErrMessage)
		}
		if err != nil {
			return err
		}
		emit(map[string]any{"topic": c.topic, "added": *count})
	case "list-offsets":
		starts, err := adm.ListStartOffsets(ctx, c.topic)
		if err == nil {
			err = starts.Error()
		}
		if err != nil {
			return fmt.Errorf("start offsets: %w", err)
		}
		ends, err := adm.ListEndOffsets(ctx, c.topic)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			return fmt.Errorf("end offsets: %w", err)
		}
		var ps []map[string]any
		for p := range int32(len(starts[c.topic])) {
			s, okS := starts.Lookup(c.topic, p)
			e, okE := ends.Lookup(c.topic, p)
			if !okS || !okE {
				return fmt.Errorf("partition %d missing from the offsets listed", p)
			}
			ps = append(ps, map[string]any{"p": p, "start": s.Offset, "end": e.Offset})
		}
		emit(map[string]any{"topic": c.topic, "partitions": ps})
	case "delete-topic":
		r, err := adm.DeleteTopic(ctx, c.topic)
		if err != nil {
			return withMessage(err, r.ErrMessage)
		}
		emit(map[string]any{"topic": c.topic, "deleted": true})
	default:
		fmt.Fprintf(os.Stderr, "e2e-franz admin: unknown op %q (see admin.go)\n", op)
		os.Exit(2)
	}
	return nil
}

// withMessage adds the broker's error message, when it sent one, to err.
func withMessage(err error, msg string) error {
	if err != nil && msg != "" {
		return fmt.Errorf("%w (%s)", err, msg)
	}
	return err
}

// errorName is the Kafka name of a broker error code (e.g. UNKNOWN_TOPIC_OR_PARTITION).
func errorName(err error) string {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return err.Error()
}
