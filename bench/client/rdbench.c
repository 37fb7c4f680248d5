/*
 * rdbench: the load generator behind bench/run, written in C against librdkafka so that the figures measure the
 * broker and not a scripting language's per-message cost.
 *
 * Every mode prints exactly one JSON object on stdout (the driver parses it); diagnostics go to stderr.
 *
 *   rdbench version
 *   rdbench create-topic --brokers B --topic T --partitions P [--replication-factor R] [--min-insync M]
 *   rdbench delete-topic --brokers B --topic T
 *   rdbench produce      --brokers B --topic T --messages N --size S --acks 1|all [--linger-ms L] [--batch-bytes X]
 *                        [--await-hw 1]
 *   rdbench consume      --brokers B --topic T --messages N
 *   rdbench latency      --brokers B --topic T --rate R --seconds D --warmup W --size S --acks 1|all [--linger-ms L]
 *   rdbench first-ack    --brokers B --topic T
 *
 * The client settings are fixed here, not in the driver, so every broker under test gets exactly the same client.
 * They are documented in bench/README.md; keep the two in step.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

/* Throughput producer defaults: batch hard, so the broker sees large produce requests. */
#define DEFAULT_LINGER_MS 5
/* librdkafka caps batch.size at message.max.bytes (default 1000000), so 1 MB is the largest batch it builds. */
#define DEFAULT_BATCH_BYTES 1000000
/* The latency producer sends as soon as a message is queued: linger would dominate the figure at 5k msg/s. */
#define DEFAULT_LATENCY_LINGER_MS 0

struct args {
    const char *mode;
    const char *brokers;
    const char *topic;
    const char *acks;
    long long messages;
    int size;
    int partitions;
    int replication_factor;
    int min_insync;
    int await_hw;
    int linger_ms;
    int batch_bytes;
    double rate;
    double seconds;
    double warmup;
    double timeout;
    /* --set key=value: librdkafka settings for every client (security.protocol=SSL and its CA, say). */
    const char *extra[16];
    int extra_count;
};

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rdbench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set(rd_kafka_conf_t *conf, const char *key, const char *value) {
    char err[512];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        die("config %s=%s: %s", key, value, err);
}

static void set_int(rd_kafka_conf_t *conf, const char *key, long long value) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", value);
    set(conf, key, buf);
}

static rd_kafka_conf_t *base_conf(const struct args *a) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", a->brokers);
    set(conf, "client.id", "rdbench");
    /* Loopback: no need for the broker.address.family dance, but be explicit so "localhost" never picks ::1. */
    set(conf, "broker.address.family", "v4");
    for (int i = 0; i < a->extra_count; i++) {
        char key[256];
        const char *eq = strchr(a->extra[i], '=');
        if (!eq || eq == a->extra[i] || (size_t)(eq - a->extra[i]) >= sizeof(key))
            die("--set %s: expected key=value", a->extra[i]);
        memcpy(key, a->extra[i], (size_t)(eq - a->extra[i]));
        key[eq - a->extra[i]] = 0;
        set(conf, key, eq + 1);
    }
    /* For investigating the client, not for measuring: RDBENCH_DEBUG=broker,metadata,... */
    const char *debug = getenv("RDBENCH_DEBUG");
    if (debug && *debug)
        set(conf, "debug", debug);
    return conf;
}

/* Settings shared by every producer; only acks and linger differ between modes. */
static rd_kafka_conf_t *producer_conf(const struct args *a, int linger_ms) {
    rd_kafka_conf_t *conf = base_conf(a);
    set(conf, "acks", a->acks);
    set_int(conf, "linger.ms", linger_ms);
    set_int(conf, "batch.size", a->batch_bytes);
    /* Let batch.size, not the message count, bound a batch (default 10000 would cap 100-byte batches at 1 MB anyway). */
    set(conf, "batch.num.messages", "1000000");
    /* A deep local queue so the producer never stalls on its own buffer before the broker pushes back. */
    set(conf, "queue.buffering.max.kbytes", "1048576");
    set(conf, "queue.buffering.max.messages", "2000000");
    set(conf, "compression.codec", "none");
    set(conf, "enable.idempotence", "false");
    return conf;
}

static rd_kafka_t *new_handle(rd_kafka_type_t type, rd_kafka_conf_t *conf) {
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
    if (!rk)
        die("rd_kafka_new: %s", err);
    return rk;
}

/* Partition count of `topic`, waiting (up to timeout) until every partition has a leader and, with full_isr,
 * every replica in its ISR (a replicated topic just created, before it is measured). */
static int wait_for_topic(rd_kafka_t *rk, const char *topic, int want, int full_isr, double timeout) {
    double deadline = mono_now() + timeout;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
        int count = -1;
        if (!err && md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            const rd_kafka_metadata_topic_t *t = &md->topics[0];
            int led = 0;
            for (int i = 0; i < t->partition_cnt; i++)
                led += t->partitions[i].leader >= 0 &&
                       (!full_isr || t->partitions[i].isr_cnt == t->partitions[i].replica_cnt);
            if (t->partition_cnt > 0 && led == t->partition_cnt && (want <= 0 || t->partition_cnt == want))
                count = t->partition_cnt;
        }
        if (md)
            rd_kafka_metadata_destroy(md);
        if (count > 0) {
            rd_kafka_topic_destroy(rkt);
            return count;
        }
        if (mono_now() > deadline)
            die("topic %s has no leader%s for every partition after %.0f s", topic,
                full_isr ? " and full ISR" : "", timeout);
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

/* ---- create-topic ---------------------------------------------------------------------------------------- */

static int cmd_create_topic(const struct args *a) {
    rd_kafka_t *rk = new_handle(RD_KAFKA_PRODUCER, base_conf(a));
    char err[512];
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(a->topic, a->partitions, a->replication_factor, err, sizeof(err));
    if (!nt)
        die("NewTopic: %s", err);
    if (a->min_insync > 0) {
        char v[16];
        snprintf(v, sizeof(v), "%d", a->min_insync);
        if (rd_kafka_NewTopic_set_config(nt, "min.insync.replicas", v))
            die("NewTopic: cannot set min.insync.replicas");
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev)
        die("CreateTopics: no answer in 30 s");
    if (rd_kafka_event_error(ev))
        die("CreateTopics: %s", rd_kafka_event_error_string(ev));
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t **topics = rd_kafka_CreateTopics_result_topics(res, &n);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(topics[i]);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            die("CreateTopics %s: %s", rd_kafka_topic_result_name(topics[i]),
                rd_kafka_topic_result_error_string(topics[i]));
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_NewTopic_destroy(nt);
    int parts = wait_for_topic(rk, a->topic, a->partitions, 1, a->timeout);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    printf("{\"topic\":\"%s\",\"partitions\":%d,\"replication_factor\":%d}\n", a->topic, parts,
           a->replication_factor);
    return 0;
}

/* ---- delete-topic ---------------------------------------------------------------------------------------- */

static int cmd_delete_topic(const struct args *a) {
    rd_kafka_t *rk = new_handle(RD_KAFKA_PRODUCER, base_conf(a));
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(a->topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
    if (!ev)
        die("DeleteTopics: no answer in 60 s");
    if (rd_kafka_event_error(ev))
        die("DeleteTopics: %s", rd_kafka_event_error_string(ev));
    size_t n = 0;
    const rd_kafka_topic_result_t **topics =
        rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(topics[i]);
        if (e && e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            die("DeleteTopics %s: %s", rd_kafka_topic_result_name(topics[i]),
                rd_kafka_topic_result_error_string(topics[i]));
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    printf("{\"deleted\":\"%s\"}\n", a->topic);
    return 0;
}

/* ---- percentiles ---------------------------------------------------------------------------------------- */

static int cmp_i64(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

static double pct_ms(const int64_t *sorted, long long n, double q) {
    /* Nearest-rank percentile. */
    long long rank = (long long)(q * (double)n + 0.999999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)sorted[rank - 1] / 1e6;
}

/* ---- produce --------------------------------------------------------------------------------------------- */

struct produce_state {
    long long delivered;
    long long failed;
    rd_kafka_resp_err_t first_error;
    /* produce() to delivery report of each acknowledged message, as librdkafka measures it: at full speed this is
     * mostly time queued in the client, so it shows how far behind the broker keeps the producer. */
    int64_t *latency_ns;
};

static void produce_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    struct produce_state *st = opaque;
    if (m->err) {
        if (!st->failed)
            st->first_error = m->err;
        st->failed++;
    } else {
        int64_t us = rd_kafka_message_latency(m);
        st->latency_ns[st->delivered++] = us < 0 ? 0 : us * 1000;
    }
}

/* Sum over the topic's partitions of the high watermark (what consumers can read: on a replicated topic, what
 * every in-sync replica holds). */
static long long high_watermarks(rd_kafka_t *rk, const char *topic, int parts) {
    long long sum = 0;
    for (int p = 0; p < parts; p++) {
        int64_t low, high;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, p, &low, &high, 10000);
        if (e)
            die("high watermark of %s-%d: %s", topic, p, rd_kafka_err2str(e));
        sum += high;
    }
    return sum;
}

static int cmd_produce(const struct args *a) {
    struct produce_state st = {0};
    st.latency_ns = malloc(sizeof(int64_t) * (size_t)(a->messages > 0 ? a->messages : 1));
    if (!st.latency_ns)
        die("out of memory");
    rd_kafka_conf_t *conf = producer_conf(a, a->linger_ms);
    rd_kafka_conf_set_dr_msg_cb(conf, produce_dr);
    rd_kafka_conf_set_opaque(conf, &st);
    rd_kafka_t *rk = new_handle(RD_KAFKA_PRODUCER, conf);
    int parts = wait_for_topic(rk, a->topic, 0, 0, a->timeout);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, a->topic, NULL);

    /* One payload for every message, handed over without a copy (flags 0): the client's cost per message stays
     * as small as librdkafka allows. Its content does not matter because compression is off. */
    char *payload = malloc((size_t)a->size);
    if (!payload)
        die("out of memory");
    for (int i = 0; i < a->size; i++)
        payload[i] = (char)('a' + (i * 7) % 26);

    long long hw_before = a->await_hw ? high_watermarks(rk, a->topic, parts) : 0;
    double start = mono_now();
    for (long long i = 0; i < a->messages; i++) {
        /* Round-robin over partitions, decided here rather than by a partitioner, so every broker gets the same
         * spread. */
        int32_t part = (int32_t)(i % parts);
        while (rd_kafka_produce(rkt, part, 0, payload, (size_t)a->size, NULL, 0, NULL) == -1) {
            rd_kafka_resp_err_t e = rd_kafka_last_error();
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                die("produce: %s", rd_kafka_err2str(e));
            rd_kafka_poll(rk, 1);
        }
        if ((i & 1023) == 0)
            rd_kafka_poll(rk, 0);
    }
    double deadline = mono_now() + a->timeout;
    while (st.delivered + st.failed < a->messages) {
        rd_kafka_poll(rk, 10);
        if (mono_now() > deadline)
            die("produce: %lld of %lld acknowledged after timeout", st.delivered, a->messages);
    }
    double secs = mono_now() - start;
    if (st.failed)
        die("produce: %lld messages failed, first error: %s", st.failed, rd_kafka_err2str(st.first_error));
    /* --await-hw: with acks=1 the last acknowledgement can come before the followers have the data; wait until
     * the high watermarks cover everything written, so that the run (and the brokers' CPU measured around it)
     * includes the replication. The rate is still up to the last acknowledgement. */
    double replicated_secs = 0;
    if (a->await_hw) {
        while (high_watermarks(rk, a->topic, parts) - hw_before < a->messages) {
            if (mono_now() > deadline)
                die("produce: the high watermarks did not cover the run before the timeout");
            struct timespec pause = {0, 2 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
        replicated_secs = mono_now() - start - secs;
    }
    double bytes = (double)a->messages * a->size;
    long long n = st.delivered;
    qsort(st.latency_ns, (size_t)n, sizeof(int64_t), cmp_i64);
    printf("{\"messages\":%lld,\"bytes\":%.0f,\"seconds\":%.6f,\"msgs_per_s\":%.1f,\"mib_per_s\":%.3f,"
           "\"partitions\":%d,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f",
           a->messages, bytes, secs, a->messages / secs, bytes / secs / (1024.0 * 1024.0), parts,
           pct_ms(st.latency_ns, n, 0.50), pct_ms(st.latency_ns, n, 0.99), pct_ms(st.latency_ns, n, 0.999));
    if (a->await_hw)
        printf(",\"replicated_s\":%.6f", replicated_secs);
    printf("}\n");
    free(st.latency_ns);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    free(payload);
    return 0;
}

/* ---- consume --------------------------------------------------------------------------------------------- */

/* A consumer with manual assignment from the beginning of every partition: no group join and no offset commits,
 * so the figure is the fetch path alone. librdkafka wants a group.id even for assign(); a unique one that is
 * never joined costs one FindCoordinator. librdkafka's fetch defaults are kept. */
static rd_kafka_t *assigned_consumer(const struct args *a, int *parts_out) {
    rd_kafka_conf_t *conf = base_conf(a);
    set(conf, "enable.partition.eof", "false");
    set(conf, "enable.auto.commit", "false");
    char group[64];
    snprintf(group, sizeof(group), "rdbench-%ld", (long)getpid());
    set(conf, "group.id", group);
    /* librdkafka 2.0 stops fetching a partition once its prefetch queue holds queued.min.messages (default
     * 100000) and then waits a hard-coded second before fetching again (2.1 made this fetch.queue.backoff.ms).
     * A fast consumer drains 100000 small messages in well under that second, so with the default the figure
     * is the back-off. Raise both thresholds so they never trigger. */
    set(conf, "queued.min.messages", "10000000");
    set(conf, "queued.max.messages.kbytes", "2097151");
    rd_kafka_t *rk = new_handle(RD_KAFKA_CONSUMER, conf);
    rd_kafka_poll_set_consumer(rk);
    int parts = wait_for_topic(rk, a->topic, 0, 0, a->timeout);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(list, a->topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, list);
    if (e)
        die("assign: %s", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(list);
    *parts_out = parts;
    return rk;
}

static int cmd_consume(const struct args *a) {
    int parts = 0;
    double start = mono_now();
    rd_kafka_t *rk = assigned_consumer(a, &parts);
    long long got = 0;
    double bytes = 0, first = 0;
    double deadline = mono_now() + a->timeout;
    while (got < a->messages) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m) {
            if (m->err) {
                fprintf(stderr, "rdbench: consume: %s\n", rd_kafka_message_errstr(m));
            } else {
                if (got == 0)
                    first = mono_now();
                got++;
                bytes += (double)m->len;
            }
            rd_kafka_message_destroy(m);
        }
        if (mono_now() > deadline)
            die("consume: %lld of %lld messages after timeout", got, a->messages);
    }
    double end = mono_now();
    /* The rate runs from the first message, so connection and metadata set-up do not count; "total_seconds"
     * includes them. */
    double secs = end - first;
    printf("{\"messages\":%lld,\"bytes\":%.0f,\"seconds\":%.6f,\"total_seconds\":%.6f,\"msgs_per_s\":%.1f,"
           "\"mib_per_s\":%.3f,\"partitions\":%d}\n",
           got, bytes, secs, end - start, got / secs, bytes / secs / (1024.0 * 1024.0), parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}

/* ---- latency --------------------------------------------------------------------------------------------- */

struct latency_state {
    const struct args *a;
    long long total;
    int64_t *latency_ns; /* by sequence number; -1 until received */
    long long received;
    long long duplicates;
    volatile int stop;
    rd_kafka_t *consumer;
    /* Probes: one message per partition, sent before the timed run, with sequence number -1 - partition. */
    int partitions;
    int probes_seen; /* partitions whose probe has arrived */
    char *probe_seen;
};

static void *latency_consumer(void *arg) {
    struct latency_state *st = arg;
    while (!st->stop && st->received < st->total) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(st->consumer, 50);
        if (!m)
            continue;
        int64_t now = mono_ns();
        if (!m->err && m->len >= 16) {
            int64_t seq, sent;
            memcpy(&seq, m->payload, 8);
            memcpy(&sent, (const char *)m->payload + 8, 8);
            if (seq < 0 && seq >= -(int64_t)st->partitions) {
                if (!st->probe_seen[-1 - seq]) {
                    st->probe_seen[-1 - seq] = 1;
                    __atomic_add_fetch(&st->probes_seen, 1, __ATOMIC_RELAXED);
                }
            } else if (seq >= 0 && seq < st->total) {
                if (st->latency_ns[seq] >= 0) {
                    st->duplicates++;
                } else {
                    st->latency_ns[seq] = now - sent;
                    __atomic_add_fetch(&st->received, 1, __ATOMIC_RELAXED);
                }
            }
        } else if (m->err) {
            fprintf(stderr, "rdbench: latency consumer: %s\n", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    return NULL;
}


static int cmd_latency(const struct args *a) {
    if (a->size < 16)
        die("latency: --size must be at least 16 (sequence number and timestamp)");
    struct latency_state st = {0};
    st.a = a;
    st.total = (long long)(a->rate * a->seconds);
    long long warm = (long long)(a->rate * a->warmup);
    if (st.total <= warm)
        die("latency: --seconds must exceed --warmup");
    st.latency_ns = malloc(sizeof(int64_t) * (size_t)st.total);
    if (!st.latency_ns)
        die("out of memory");
    for (long long i = 0; i < st.total; i++)
        st.latency_ns[i] = -1;

    int parts = 0;
    st.consumer = assigned_consumer(a, &parts);
    rd_kafka_t *prod = new_handle(RD_KAFKA_PRODUCER, producer_conf(a, a->linger_ms));
    wait_for_topic(prod, a->topic, 0, 0, a->timeout);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(prod, a->topic, NULL);
    st.partitions = parts;
    st.probe_seen = calloc((size_t)parts, 1);
    char *payload = calloc(1, (size_t)a->size);
    if (!payload || !st.probe_seen)
        die("out of memory");
    pthread_t thread;
    if (pthread_create(&thread, NULL, latency_consumer, &st))
        die("pthread_create failed");

    /* Start the clock only once the consumer receives from every partition: a broker may take a while to serve
     * the first fetch of a topic just created (leader election, offset lookup back-off), and that start-up delay
     * is not the latency of a running pipeline. */
    double probe_start = mono_now();
    for (int p = 0; p < parts; p++) {
        int64_t probe = -1 - (int64_t)p;
        memcpy(payload, &probe, 8);
        if (rd_kafka_produce(rkt, p, RD_KAFKA_MSG_F_COPY, payload, (size_t)a->size, NULL, 0, NULL) == -1)
            die("produce probe: %s", rd_kafka_err2str(rd_kafka_last_error()));
    }
    double probe_deadline = mono_now() + a->timeout;
    while (__atomic_load_n(&st.probes_seen, __ATOMIC_RELAXED) < parts) {
        rd_kafka_poll(prod, 10);
        if (mono_now() > probe_deadline)
            die("latency: the consumer saw probes from %d of %d partitions before the timeout",
                __atomic_load_n(&st.probes_seen, __ATOMIC_RELAXED), parts);
    }
    double ready_secs = mono_now() - probe_start;
    int64_t interval = (int64_t)(1e9 / a->rate);
    int64_t start = mono_ns();
    int64_t max_behind = 0;
    for (long long i = 0; i < st.total; i++) {
        int64_t due = start + i * interval;
        struct timespec ts = {due / 1000000000LL, due % 1000000000LL};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
        int64_t now = mono_ns();
        if (now - due > max_behind)
            max_behind = now - due;
        /* The actual send time, not the scheduled one: a late client thread (two cores, shared) is reported as
         * max_behind_ms rather than charged to the broker. */
        memcpy(payload, &i, 8);
        memcpy(payload + 8, &now, 8);
        while (rd_kafka_produce(rkt, (int32_t)(i % parts), RD_KAFKA_MSG_F_COPY, payload, (size_t)a->size, NULL, 0,
                                NULL) == -1) {
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                die("produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
            rd_kafka_poll(prod, 1);
        }
        rd_kafka_poll(prod, 0);
    }
    double sent_secs = (double)(mono_ns() - start) / 1e9;
    rd_kafka_flush(prod, 10000);
    double deadline = mono_now() + 10;
    while (__atomic_load_n(&st.received, __ATOMIC_RELAXED) < st.total && mono_now() < deadline) {
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    st.stop = 1;
    pthread_join(thread, NULL);

    /* Percentiles over the messages after the warm-up that arrived; lost ones are reported, not hidden. */
    long long n = 0;
    for (long long i = warm; i < st.total; i++)
        if (st.latency_ns[i] >= 0)
            st.latency_ns[n++] = st.latency_ns[i];
    long long lost = (st.total - warm) - n;
    if (n == 0)
        die("latency: no message received after the warm-up");
    qsort(st.latency_ns, (size_t)n, sizeof(int64_t), cmp_i64);
    double sum = 0;
    for (long long i = 0; i < n; i++)
        sum += (double)st.latency_ns[i];
    printf("{\"messages\":%lld,\"measured\":%lld,\"lost\":%lld,\"duplicates\":%lld,\"rate\":%.1f,"
           "\"achieved_rate\":%.1f,\"bytes\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
           "\"max_ms\":%.3f,\"mean_ms\":%.3f,\"max_behind_ms\":%.3f,\"partitions\":%d,\"consumer_ready_ms\":%.1f}\n",
           st.total, n, lost, st.duplicates, a->rate, st.total / sent_secs, (double)st.total * a->size,
           pct_ms(st.latency_ns, n, 0.50), pct_ms(st.latency_ns, n, 0.99), pct_ms(st.latency_ns, n, 0.999),
           (double)st.latency_ns[n - 1] / 1e6, sum / (double)n / 1e6, (double)max_behind / 1e6, parts,
           ready_secs * 1000);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(prod);
    rd_kafka_consumer_close(st.consumer);
    rd_kafka_destroy(st.consumer);
    free(payload);
    free(st.latency_ns);
    free(st.probe_seen);
    return 0;
}

/* ---- first-ack ------------------------------------------------------------------------------------------- */

static void first_ack_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    int *state = opaque;
    *state = m->err ? -(int)m->err - 1 : 1;
}

/* Block until a plain TCP connect to the first bootstrap address succeeds, trying every millisecond. */
static void wait_for_listener(const char *brokers, double timeout) {
    char host[256];
    snprintf(host, sizeof(host), "%s", brokers);
    host[strcspn(host, ",")] = 0;
    char *colon = strrchr(host, ':');
    if (!colon)
        die("bootstrap address %s has no port", host);
    *colon = 0;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        die("first-ack needs a numeric IPv4 bootstrap address, got %s", host);
    double deadline = mono_now() + timeout;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            die("socket: %s", strerror(errno));
        int ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
        close(fd);
        if (ok)
            return;
        if (mono_now() > deadline)
            die("nothing listens on %s after %.0f s", brokers, timeout);
        struct timespec pause = {0, 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

/* Started together with the broker: wait until the listener accepts, then produce one message and wait for its
 * acknowledgement. The wait is a bare TCP connect every millisecond because librdkafka, once its first connect
 * is refused, only retries from a 1 s timer, which would measure the client. The topic does not exist yet: the
 * producer's metadata request lets the broker auto-create it (auto.create.topics.enable, true by default on
 * Kafka too), so the figure includes creating a topic. */
static int cmd_first_ack(const struct args *a) {
    double start_wall = wall_now();
    wait_for_listener(a->brokers, a->timeout);
    double listening_wall = wall_now();
    int state = 0;
    rd_kafka_conf_t *conf = producer_conf(a, 0);
    set(conf, "reconnect.backoff.ms", "10");
    set(conf, "reconnect.backoff.max.ms", "10");
    set(conf, "retry.backoff.ms", "10");
    set(conf, "topic.metadata.refresh.fast.interval.ms", "10");
    set(conf, "message.timeout.ms", "120000");
    if (!getenv("RDBENCH_DEBUG"))
        set(conf, "log_level", "0"); /* connection refused is expected until the broker listens */
    rd_kafka_conf_set_dr_msg_cb(conf, first_ack_dr);
    rd_kafka_conf_set_opaque(conf, &state);
    rd_kafka_t *rk = new_handle(RD_KAFKA_PRODUCER, conf);
    char payload[16] = "first-ack";
    if (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(a->topic), RD_KAFKA_V_VALUE(payload, sizeof(payload)),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END))
        die("produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
    while (state == 0)
        rd_kafka_poll(rk, 1);
    double ack_wall = wall_now();
    if (state < 0)
        die("first-ack: %s", rd_kafka_err2str((rd_kafka_resp_err_t)(-state - 1)));
    printf("{\"client_start\":%.6f,\"listening\":%.6f,\"ack\":%.6f}\n", start_wall, listening_wall, ack_wall);
    rd_kafka_destroy(rk);
    return 0;
}

/* ---- main ------------------------------------------------------------------------------------------------ */

static void usage(void) {
    fprintf(stderr, "usage: rdbench version|create-topic|delete-topic|produce|consume|latency|first-ack --brokers B --topic T "
                    "[--partitions P] [--replication-factor R] [--min-insync M] [--messages N] [--size S] "
                    "[--acks 1|all] [--linger-ms L] [--batch-bytes X] [--await-hw 1] "
                    "[--rate R] [--seconds D] [--warmup W] [--timeout T] [--set key=value]...\n");
    exit(2);
}

int main(int argc, char **argv) {
    struct args a = {
        .acks = "1",
        .messages = 100000,
        .size = 100,
        .partitions = 1,
        .replication_factor = 1,
        .linger_ms = -1,
        .batch_bytes = DEFAULT_BATCH_BYTES,
        .rate = 5000,
        .seconds = 10,
        .warmup = 1,
        .timeout = 300,
    };
    if (argc < 2)
        usage();
    a.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(k, "--brokers"))
            a.brokers = v;
        else if (!strcmp(k, "--topic"))
            a.topic = v;
        else if (!strcmp(k, "--acks"))
            a.acks = v;
        else if (!strcmp(k, "--messages"))
            a.messages = atoll(v);
        else if (!strcmp(k, "--size"))
            a.size = atoi(v);
        else if (!strcmp(k, "--partitions"))
            a.partitions = atoi(v);
        else if (!strcmp(k, "--replication-factor"))
            a.replication_factor = atoi(v);
        else if (!strcmp(k, "--min-insync"))
            a.min_insync = atoi(v);
        else if (!strcmp(k, "--await-hw"))
            a.await_hw = atoi(v);
        else if (!strcmp(k, "--linger-ms"))
            a.linger_ms = atoi(v);
        else if (!strcmp(k, "--batch-bytes"))
            a.batch_bytes = atoi(v);
        else if (!strcmp(k, "--rate"))
            a.rate = atof(v);
        else if (!strcmp(k, "--seconds"))
            a.seconds = atof(v);
        else if (!strcmp(k, "--warmup"))
            a.warmup = atof(v);
        else if (!strcmp(k, "--timeout"))
            a.timeout = atof(v);
        else if (!strcmp(k, "--set")) {
            if (a.extra_count == (int)(sizeof(a.extra) / sizeof(a.extra[0])))
                die("too many --set");
            a.extra[a.extra_count++] = v;
        }
        else
            usage();
    }
    if (!strcmp(a.mode, "version")) {
        printf("{\"librdkafka\":\"%s\"}\n", rd_kafka_version_str());
        return 0;
    }
    if (!a.brokers || !a.topic || a.size <= 0 || a.messages <= 0 || a.partitions <= 0 || a.replication_factor <= 0 ||
        a.rate <= 0)
        usage();
    if (strcmp(a.acks, "1") && strcmp(a.acks, "all") && strcmp(a.acks, "-1") && strcmp(a.acks, "0"))
        usage();
    if (!strcmp(a.mode, "create-topic"))
        return cmd_create_topic(&a);
    if (!strcmp(a.mode, "delete-topic"))
        return cmd_delete_topic(&a);
    if (!strcmp(a.mode, "produce")) {
        if (a.linger_ms < 0)
            a.linger_ms = DEFAULT_LINGER_MS;
        return cmd_produce(&a);
    }
    if (!strcmp(a.mode, "consume"))
        return cmd_consume(&a);
    if (!strcmp(a.mode, "latency")) {
        if (a.linger_ms < 0)
            a.linger_ms = DEFAULT_LATENCY_LINGER_MS;
        return cmd_latency(&a);
    }
    if (!strcmp(a.mode, "first-ack"))
        return cmd_first_ack(&a);
    usage();
    return 2;
}
