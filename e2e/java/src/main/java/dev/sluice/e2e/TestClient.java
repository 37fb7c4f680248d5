package dev.sluice.e2e;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java side of the e2e suite: the real Apache Kafka Java client, driven by pytest through
 * {@code java -jar e2e-java-client.jar SUBCOMMAND ...}. Every subcommand prints JSON lines on stdout
 * so the Python tests make the assertions; this program only reports what the client saw.
 *
 * <pre>
 *   produce --bootstrap B --topic T --count N [--compression C] [--prefix P] [--value-size S] [--linger-ms L]
 *   consume --bootstrap B --topic T --group G --count N [--timeout-ms T] [--print]
 *   admin   --bootstrap B      (commands on stdin, one per line; see runAdminCommand)
 * </pre>
 */
public final class TestClient {
    private static final int ADMIN_TIMEOUT_SECONDS = 30;

    private TestClient() {}

    public static void main(String[] args) throws Exception {
        // Keep the client's own logging out of the JSON on stdout; warnings go to stderr.
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        if (args.length < 1) {
            usage();
        }
        Map<String, String> opts = parseOptions(Arrays.copyOfRange(args, 1, args.length));
        int rc;
        switch (args[0]) {
            case "produce" -> rc = produce(opts);
            case "consume" -> rc = consume(opts);
            case "admin" -> rc = admin(opts);
            default -> {
                usage();
                rc = 2;
            }
        }
        System.out.flush();
        System.exit(rc);
    }

    private static void usage() {
        System.err.println("usage: TestClient produce|consume|admin --bootstrap HOST:PORT [options]");
        System.exit(2);
    }

    private static Map<String, String> parseOptions(String[] args) {
        Map<String, String> opts = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument " + a);
            }
            String key = a.substring(2);
            if (i + 1 < args.length && !args[i + 1].startsWith("--")) {
                opts.put(key, args[++i]);
            } else {
                opts.put(key, "true");
            }
        }
        return opts;
    }

    /** --client-config FILE: client properties (security.protocol, ssl.*, sasl.*) added to every client. */
    private static void clientConfig(Properties props, Map<String, String> opts) throws java.io.IOException {
        String file = opts.get("client-config");
        if (file == null) {
            return;
        }
        try (var in = java.nio.file.Files.newBufferedReader(java.nio.file.Path.of(file), StandardCharsets.UTF_8)) {
            Properties extra = new Properties();
            extra.load(in);
            props.putAll(extra);
        }
    }

    private static String required(Map<String, String> opts, String key) {
        String v = opts.get(key);
        if (v == null) {
            throw new IllegalArgumentException("missing --" + key);
        }
        return v;
    }

    /** The value of record i: "prefix-i" padded with a repeating, compressible filler to valueSize bytes. */
    static byte[] valueFor(String prefix, int i, int valueSize) {
        StringBuilder sb = new StringBuilder(prefix).append('-').append(i);
        if (sb.length() < valueSize) {
            sb.append(':');
        }
        while (sb.length() < valueSize) {
            sb.append((char) ('a' + (sb.length() % 26)));
        }
        return sb.toString().getBytes(StandardCharsets.UTF_8);
    }

    private static int produce(Map<String, String> opts) throws Exception {
        String topic = required(opts, "topic");
        int count = Integer.parseInt(required(opts, "count"));
        String prefix = opts.getOrDefault("prefix", "java");
        int valueSize = Integer.parseInt(opts.getOrDefault("value-size", "0"));

        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, required(opts, "bootstrap"));
        clientConfig(props, opts);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, opts.getOrDefault("compression", "none"));
        props.put(ProducerConfig.LINGER_MS_CONFIG, opts.getOrDefault("linger-ms", "20"));
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        // acks and enable.idempotence are deliberately left at the client's defaults (all / true):
        // the suite checks that the broker works with what an unconfigured Java producer does.
        ProducerConfig effective = new ProducerConfig(props);

        AtomicLong acked = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        AtomicReference<String> firstError = new AtomicReference<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            for (int i = 0; i < count; i++) {
                byte[] key = ("k" + i).getBytes(StandardCharsets.UTF_8);
                producer.send(new ProducerRecord<>(topic, key, valueFor(prefix, i, valueSize)), (md, ex) -> {
                    if (ex == null) {
                        acked.incrementAndGet();
                    } else {
                        failed.incrementAndGet();
                        firstError.compareAndSet(null, ex.getClass().getSimpleName() + ": " + ex.getMessage());
                    }
                });
            }
            producer.flush();
        }
        Json out = new Json()
                .put("acked", acked.get())
                .put("failed", failed.get())
                .put("first_error", firstError.get())
                .put("acks", effective.getString(ProducerConfig.ACKS_CONFIG))
                .put("idempotence", effective.getBoolean(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG));
        System.out.println(out);
        return failed.get() == 0 ? 0 : 1;
    }

    private static int consume(Map<String, String> opts) throws java.io.IOException {
        String topic = required(opts, "topic");
        int count = Integer.parseInt(required(opts, "count"));
        long timeoutMs = Long.parseLong(opts.getOrDefault("timeout-ms", "60000"));
        boolean print = opts.containsKey("print");

        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, required(opts, "bootstrap"));
        clientConfig(props, opts);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, required(opts, "group"));
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

        Base64.Encoder b64 = Base64.getEncoder();
        long consumed = 0;
        long deadline = System.currentTimeMillis() + timeoutMs;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(topic));
            while (consumed < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    consumed++;
                    if (print) {
                        System.out.println(new Json()
                                .put("p", r.partition())
                                .put("o", r.offset())
                                .put("k", r.key() == null ? null : b64.encodeToString(r.key()))
                                .put("v", r.value() == null ? null : b64.encodeToString(r.value())));
                    }
                }
            }
            consumer.commitSync(Duration.ofSeconds(30));
        }
        System.out.println(new Json().put("consumed", consumed));
        return consumed >= count ? 0 : 1;
    }

    private static int admin(Map<String, String> opts) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, required(opts, "bootstrap"));
        clientConfig(props, opts);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        try (Admin admin = Admin.create(props);
             BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                line = line.strip();
                if (line.isEmpty()) {
                    continue;
                }
                Json result;
                try {
                    result = runAdminCommand(admin, line.split("\\s+"));
                } catch (ExecutionException e) {
                    result = errorJson(e.getCause() == null ? e : e.getCause());
                } catch (Exception e) {
                    result = errorJson(e);
                }
                System.out.println(result.put("cmd", line));
                System.out.flush();
            }
        }
        return 0;
    }

    private static Json errorJson(Throwable t) {
        return new Json()
                .put("ok", false)
                .put("error", t.getClass().getSimpleName())
                .put("code", Errors.forException(t).code())
                .put("message", t.getMessage());
    }

    /**
     * create-topic NAME PARTITIONS [validate-only] | describe-topic NAME | create-partitions NAME TOTAL |
     * alter-config NAME key=value... | describe-config NAME key... | await-config NAME key=value... |
     * delete-topic NAME | list-topics |
     * describe-cluster
     */
    private static Json runAdminCommand(Admin admin, String[] c) throws Exception {
        switch (c[0]) {
            case "create-topic" -> {
                NewTopic t = new NewTopic(c[1], Integer.parseInt(c[2]), (short) 1);
                boolean validateOnly = c.length > 3 && c[3].equals("validate-only");
                admin.createTopics(List.of(t), new CreateTopicsOptions().validateOnly(validateOnly))
                        .all().get(ADMIN_TIMEOUT_SECONDS, TimeUnit.SECONDS);
                return new Json().put("ok", true);
            }
            case "describe-topic" -> {
                TopicDescription d = admin.describeTopics(List.of(c[1])).allTopicNames()
                        .get(ADMIN_TIMEOUT_SECONDS, TimeUnit.SECONDS).get(c[1]);
                List<String> parts = new ArrayList<>();
                for (TopicPartitionInfo p : d.partitions()) {
                    parts.add(new Json()
                            .put("partition", p.partition())
                            .put("leader", p.leader() == null ? -1 : p.leader().id())
                            .put("replicas", p.replicas().size())
                            .put("isr", p.isr().size())
                            .toString());
                }
                return new Json().put("ok", true).put("name", d.name())
                        .put("topic_id", d.topicId().toString()).putRaw("partitions", "[" + String.join(",", parts) + "]");
            }
            case "create-partitions" -> {
                admin.createPartitions(Map.of(c[1], NewPartitions.increaseTo(Integer.parseInt(c[2]))))
                        .all().get(ADMIN_TIMEOUT_SECONDS, TimeUnit.SECONDS);
                return new Json().put("ok", true);
            }
            case "alter-config" -> {
                ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, c[1]);
                List<AlterConfigOp> ops = new ArrayList<>();
                for (int i = 2; i < c.length; i++) {
                    String[] kv = c[i].split("=", 2);
                    ops.add(new AlterConfigOp(new ConfigEntry(kv[0], kv[1]), AlterConfigOp.OpType.SET));
                }
                Map<ConfigResource, Collection<AlterConfigOp>> req = Map.of(res, ops);
                admin.incrementalAlterConfigs(req).all().get(ADMIN_TIMEOUT_SECONDS, TimeUnit.SECONDS);
                return new Json().put("ok", true);
            }
            case "describe-config" -> {
                ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, c[1]);
                Config cfg = admin.describeConfigs(List.of(res)).all()
                        .get(ADMIN_TIMEOUT_SECONDS, TimeUnit.SECONDS).get(res);
                Json values = new Json();
                for (int i = 2; i < c.length; i++) {
                    ConfigEntry e = cfg.get(c[i]);
                    values.put(c[i], e == null ? null : e.value());
                }
                return new Json().put("ok", true).putRaw("configs", values.toString());
            }
            case "await-config" -> {
                // Config changes reach DescribeConfigs asynchronously on Apache Kafka: poll (bounded).
                ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, c[1]);
                Map<String, String> want = new HashMap<>();
                for (int i = 2; i < c.length; i++) {
                    String[] kv = c[i].split("=", 2);
                    want.put(kv[0], kv[1]);
                }
                long deadline = System.currentTimeMillis() + ADMIN_TIMEOUT_SECONDS * 1000L;
                while (true) {
                    Config cfg = admin.describeConfigs(List.of(res)).all()
                            .get(ADMIN_TIMEOUT_SECONDS, TimeUnit.SECONDS).get(res);
                    Json values = new Json();
                    boolean match = true;
                    for (Map.Entry<String, String> w : want.entrySet()) {
                        ConfigEntry e = cfg.get(w.getKey());
                        String v = e == null ? null : e.value();
                        values.put(w.getKey(), v);
                        match &= w.getValue().equals(v);
                    }
                    if (match || System.currentTimeMillis() > deadline) {
                        return new Json().put("ok", match).putRaw("configs", values.toString());
                    }
                    Thread.sleep(100);
                }
            }
            case "delete-topic" -> {
                admin.deleteTopics(List.of(c[1])).all().get(ADMIN_TIMEOUT_SECONDS, TimeUnit.SECONDS);
                return new Json().put("ok", true);
            }
            case "list-topics" -> {
                List<String> names = new ArrayList<>(admin.listTopics().names().get(ADMIN_TIMEOUT_SECONDS, TimeUnit.SECONDS));
                return new Json().put("ok", true).putStrings("topics", names);
            }
            case "describe-cluster" -> {
                DescribeClusterResult r = admin.describeCluster();
                List<String> nodes = new ArrayList<>();
                for (Node n : r.nodes().get(ADMIN_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                    nodes.add(new Json().put("id", n.id()).put("host", n.host()).put("port", n.port()).toString());
                }
                Node controller = r.controller().get(ADMIN_TIMEOUT_SECONDS, TimeUnit.SECONDS);
                return new Json().put("ok", true)
                        .put("cluster_id", r.clusterId().get(ADMIN_TIMEOUT_SECONDS, TimeUnit.SECONDS))
                        .put("controller", controller == null ? -1 : controller.id())
                        .putRaw("nodes", "[" + String.join(",", nodes) + "]");
            }
            default -> throw new IllegalArgumentException("unknown admin command " + c[0]);
        }
    }

    /** A tiny JSON object writer: enough for flat results, without pulling a JSON library into the jar. */
    static final class Json {
        private final StringBuilder sb = new StringBuilder("{");

        private Json key(String k) {
            if (sb.length() > 1) {
                sb.append(',');
            }
            quote(k);
            sb.append(':');
            return this;
        }

        Json put(String k, Object v) {
            key(k);
            if (v == null) {
                sb.append("null");
            } else if (v instanceof Number || v instanceof Boolean) {
                sb.append(v);
            } else {
                quote(v.toString());
            }
            return this;
        }

        Json putRaw(String k, String rawJson) {
            key(k);
            sb.append(rawJson);
            return this;
        }

        Json putStrings(String k, List<String> values) {
            key(k);
            sb.append('[');
            for (int i = 0; i < values.size(); i++) {
                if (i > 0) {
                    sb.append(',');
                }
                quote(values.get(i));
            }
            sb.append(']');
            return this;
        }

        private void quote(String s) {
            sb.append('"');
            for (char ch : s.toCharArray()) {
                switch (ch) {
                    case '"' -> sb.append("\\\"");
                    case '\\' -> sb.append("\\\\");
                    case '\n' -> sb.append("\\n");
                    case '\r' -> sb.append("\\r");
                    case '\t' -> sb.append("\\t");
                    default -> {
                        if (ch < 0x20) {
                            sb.append(String.format("\\u%04x", (int) ch));
                        } else {
                            sb.append(ch);
                        }
                    }
                }
            }
            sb.append('"');
        }

        @Override
        public String toString() {
            return sb + "}";
        }
    }
}
