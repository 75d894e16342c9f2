package ringlog;

import java.io.BufferedOutputStream;
import java.io.FileOutputStream;
import java.io.FileDescriptor;
import java.io.PrintStream;
import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RetriableException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The Java client's side of Ringlog's failover test (tests/e2e/test_cluster_clients.py).
 *
 * <pre>
 * java -jar failover-client.jar BOOTSTRAP TOPIC produce COUNT [--partitions N] [--interval-ms MS] [--prefix P]
 * java -jar failover-client.jar BOOTSTRAP TOPIC consume COUNT --group G [--timeout-s S] [--prefix P]
 * </pre>
 *
 * produce: an idempotent acks=all producer sends COUNT values PREFIX00000000.. round-robin over the
 * partitions, paced by --interval-ms, and prints one JSON line per acknowledgement or failure, then
 * a summary. consume: a group member (subscribe) polls until it has COUNT distinct values with the
 * prefix, printing each new one, then a summary. stdout carries only these JSON lines; the client's
 * own log (retries included) goes to stderr.
 */
public final class FailoverClient {
    private static final PrintStream OUT =
        new PrintStream(new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 1 << 16), true);

    private FailoverClient() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: BOOTSTRAP TOPIC produce|consume COUNT [--partitions N] [--interval-ms MS] "
                + "[--group G] [--timeout-s S] [--prefix P] [--group-protocol classic|consumer]");
            System.exit(64);
        }
        String bootstrap = args[0];
        String topic = args[1];
        String mode = args[2];
        long count = Long.parseLong(args[3]);
        Map<String, String> opts = new HashMap<>();
        for (int i = 4; i + 1 < args.length; i += 2) {
            opts.put(args[i].replaceFirst("^--", ""), args[i + 1]);
        }
        String prefix = opts.getOrDefault("prefix", "j");
        int rc;
        switch (mode) {
            case "produce":
                rc = produce(bootstrap, topic, count, prefix, opts);
                break;
            case "consume":
                rc = consume(bootstrap, topic, count, prefix, opts);
                break;
            default:
                System.err.println("unknown mode " + mode);
                rc = 64;
        }
        OUT.flush();
        System.exit(rc);
    }

    private static int produce(String bootstrap, String topic, long count, String prefix, Map<String, String> opts)
            throws InterruptedException {
        int partitions = Integer.parseInt(opts.getOrDefault("partitions", "1"));
        long intervalMicros = (long) (Double.parseDouble(opts.getOrDefault("interval-ms", "1")) * 1000);
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        props.put(ProducerConfig.LINGER_MS_CONFIG, "2");
        // Retries are unbounded within the delivery timeout: a failover must be ridden out, not reported.
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000");
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        props.put(ProducerConfig.RETRY_BACKOFF_MS_CONFIG, "100");
        props.put(ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "1000");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        AtomicLong acked = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        long sent = 0;
        boolean fatal = false;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            long start = System.nanoTime();
            for (long i = 0; i < count; i++) {
                String value = String.format("%s%08d", prefix, i);
                int partition = (int) (i % partitions);
                try {
                    producer.send(new ProducerRecord<>(topic, partition, null, value), (md, err) -> {
                        if (err == null) {
                            acked.incrementAndGet();
                            OUT.println("{\"event\":\"ack\",\"value\":\"" + value + "\",\"partition\":" + md.partition()
                                + ",\"offset\":" + md.offset() + ",\"ts_ms\":" + System.currentTimeMillis() + "}");
                        } else {
                            failed.incrementAndGet();
                            OUT.println("{\"event\":\"failure\",\"value\":\"" + value + "\",\"retriable\":"
                                + (err instanceof RetriableException) + ",\"error\":" + quote(err.toString()) + "}");
                        }
                    });
                    sent++;
                } catch (RuntimeException e) {
                    // send() throws only for errors the producer cannot retry (fenced, authorization, closed).
                    OUT.println("{\"event\":\"fatal\",\"value\":\"" + value + "\",\"error\":" + quote(e.toString()) + "}");
                    fatal = true;
                    break;
                }
                long due = start + (i + 1) * intervalMicros * 1000;
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                }
            }
            producer.flush();
        }
        OUT.println("{\"event\":\"summary\",\"sent\":" + sent + ",\"acked\":" + acked.get() + ",\"failed\":"
            + failed.get() + ",\"fatal\":" + fatal + "}");
        return fatal ? 2 : (failed.get() > 0 ? 1 : 0);
    }

    private static int consume(String bootstrap, String topic, long count, String prefix, Map<String, String> opts) {
        String group = opts.getOrDefault("group", "failover-client");
        long timeoutMillis = (long) (Double.parseDouble(opts.getOrDefault("timeout-s", "120")) * 1000);
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, opts.getOrDefault("group-protocol", "classic"));
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "true");
        props.put(ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, "500");
        props.put(ConsumerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "1000");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        Set<String> seen = new HashSet<>();
        long records = 0;
        long retriable = 0;
        boolean fatal = false;
        long deadline = System.currentTimeMillis() + timeoutMillis;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            // The test waits for the first assignment before it starts producing.
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {}

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    OUT.println("{\"event\":\"assigned\",\"partitions\":" + partitions.size() + "}");
                }
            });
            while (seen.size() < count && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> batch;
                try {
                    batch = consumer.poll(Duration.ofMillis(200));
                } catch (RetriableException e) {
                    retriable++;
                    OUT.println("{\"event\":\"retriable\",\"error\":" + quote(e.toString()) + "}");
                    continue;
                }
                for (ConsumerRecord<String, String> r : batch) {
                    records++;
                    String value = r.value();
                    if (value != null && value.startsWith(prefix) && seen.add(value)) {
                        OUT.println("{\"event\":\"record\",\"value\":\"" + value + "\",\"partition\":" + r.partition()
                            + ",\"offset\":" + r.offset() + "}");
                    }
                }
            }
            try {
                consumer.commitSync(Duration.ofSeconds(10));
            } catch (RuntimeException e) {
                // The values were read; a commit that fails at the very end is reported, not fatal.
                OUT.println("{\"event\":\"commit_failed\",\"error\":" + quote(e.toString()) + "}");
            }
        } catch (RuntimeException e) {
            fatal = true;
            OUT.println("{\"event\":\"fatal\",\"error\":" + quote(e.toString()) + "}");
        }
        OUT.println("{\"event\":\"summary\",\"distinct\":" + seen.size() + ",\"records\":" + records
            + ",\"retriable\":" + retriable + ",\"fatal\":" + fatal + "}");
        return fatal ? 2 : (seen.size() < count ? 1 : 0);
    }

    /** A JSON string literal: the messages here are one-line ASCII, but quotes and control characters are escaped. */
    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }
}
