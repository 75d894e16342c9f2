package ringlog;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The Java client's side of Ringlog's transaction tests (tests/e2e/test_txn_java.py). Each mode
 * prints one JSON line of what happened; the test asserts on it and on what it reads back.
 *
 * <pre>
 * java -cp failover-client.jar ringlog.TxnClient BOOTSTRAP MODE [--key value ...]
 *   commit-abort --topic T --txn-id ID --count N        N records committed (c-i), then N aborted (a-i)
 *   consume      --topic T --isolation read_committed|read_uncommitted [--idle-ms MS]
 *                                                      every value until nothing new for idle-ms
 *   transform    --input I --output O --group G --txn-id ID --count N [--abort-first true]
 *                consume-transform-produce: each input value v becomes "v!" in O, offsets committed in
 *                the same transaction; with --abort-first the first transaction is aborted and redone
 *   fence        --topic T --txn-id ID                 a second producer with the same id fences the first
 *   timeout      --topic T --txn-id ID --timeout-ms MS --wait-ms W
 *                a transaction left open W ms (past its timeout), then commit is tried
 * </pre>
 */
public final class TxnClient {
    private TxnClient() {}

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String mode = args[1];
        Map<String, String> o = new HashMap<>();
        for (int i = 2; i + 1 < args.length; i += 2) {
            o.put(args[i].replaceFirst("^--", ""), args[i + 1]);
        }
        String out;
        switch (mode) {
            case "commit-abort": out = commitAbort(bootstrap, o); break;
            case "consume": out = consume(bootstrap, o); break;
            case "transform": out = transform(bootstrap, o); break;
            case "fence": out = fence(bootstrap, o); break;
            case "timeout": out = timeout(bootstrap, o); break;
            default: throw new IllegalArgumentException("unknown mode " + mode);
        }
        System.out.println(out);
        System.out.flush();
        System.exit(0);
    }

    static Properties producerProps(String bootstrap, String txnId) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        return p;
    }

    static Properties consumerProps(String bootstrap, String group, String isolation) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return p;
    }

    static String commitAbort(String bootstrap, Map<String, String> o) {
        String topic = o.get("topic");
        int n = Integer.parseInt(o.getOrDefault("count", "10"));
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps(bootstrap, o.get("txn-id")))) {
            producer.initTransactions();
            producer.beginTransaction();
            for (int i = 0; i < n; i++) {
                producer.send(new ProducerRecord<>(topic, "k" + i, "c-" + i));
            }
            producer.commitTransaction();
            producer.beginTransaction();
            for (int i = 0; i < n; i++) {
                producer.send(new ProducerRecord<>(topic, "k" + i, "a-" + i));
            }
            producer.flush();
            producer.abortTransaction();
            // A last committed transaction: read_committed must read past the aborted one to see it.
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(topic, "end", "end"));
            producer.commitTransaction();
        }
        return "{\"committed\":" + (n + 1) + ",\"aborted\":" + n + "}";
    }

    /** Every value of the topic (all partitions) until nothing new arrives for idle-ms. */
    static String consume(String bootstrap, Map<String, String> o) {
        long idle = Long.parseLong(o.getOrDefault("idle-ms", "3000"));
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(bootstrap, null, o.get("isolation")))) {
            List<TopicPartition> tps = new ArrayList<>();
            c.partitionsFor(o.get("topic")).forEach(pi -> tps.add(new TopicPartition(pi.topic(), pi.partition())));
            c.assign(tps);
            c.seekToBeginning(tps);
            long last = System.currentTimeMillis();
            while (System.currentTimeMillis() - last < idle) {
                ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : rs) {
                    values.add(r.value());
                    last = System.currentTimeMillis();
                }
            }
        }
        return "{\"values\":" + jsonList(values) + "}";
    }

    static String transform(String bootstrap, Map<String, String> o) {
        String input = o.get("input");
        String output = o.get("output");
        int n = Integer.parseInt(o.get("count"));
        boolean abortFirst = Boolean.parseBoolean(o.getOrDefault("abort-first", "false"));
        int transactions = 0;
        int aborted = 0;
        int produced = 0;
        Properties cp = consumerProps(bootstrap, o.get("group"), "read_committed");
        cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "7");
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp);
             KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps(bootstrap, o.get("txn-id")))) {
            producer.initTransactions();
            consumer.subscribe(Collections.singletonList(input));
            int seen = 0;
            long deadline = System.currentTimeMillis() + 60_000;
            while (seen < n && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> rs = consumer.poll(Duration.ofMillis(200));
                if (rs.isEmpty()) {
                    continue;
                }
                producer.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (ConsumerRecord<String, String> r : rs) {
                    producer.send(new ProducerRecord<>(output, r.key(), r.value() + "!"));
                    offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                }
                producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
                transactions++;
                if (abortFirst && aborted == 0) {
                    producer.abortTransaction();
                    aborted++;
                    // Rewind to the last committed offsets, as an application does after an abort.
                    for (TopicPartition tp : offsets.keySet()) {
                        OffsetAndMetadata committed = consumer.committed(Collections.singleton(tp)).get(tp);
                        consumer.seek(tp, committed == null ? 0 : committed.offset());
                    }
                    continue;
                }
                producer.commitTransaction();
                produced += rs.count();
                seen += rs.count();
            }
        }
        return "{\"transactions\":" + transactions + ",\"aborted\":" + aborted + ",\"produced\":" + produced + "}";
    }

    static String fence(String bootstrap, Map<String, String> o) {
        String topic = o.get("topic");
        String id = o.get("txn-id");
        String firstError = "none";
        KafkaProducer<String, String> first = new KafkaProducer<>(producerProps(bootstrap, id));
        first.initTransactions();
        first.beginTransaction();
        first.send(new ProducerRecord<>(topic, "zombie", "zombie-open"));
        first.flush();
        try (KafkaProducer<String, String> second = new KafkaProducer<>(producerProps(bootstrap, id))) {
            second.initTransactions();
            try {
                first.send(new ProducerRecord<>(topic, "zombie", "zombie-late")).get();
                first.commitTransaction();
            } catch (Exception e) {
                firstError = rootName(e);
            }
            second.beginTransaction();
            second.send(new ProducerRecord<>(topic, "live", "live"));
            second.commitTransaction();
        } finally {
            first.close(Duration.ofSeconds(1));
        }
        return "{\"first_error\":\"" + firstError + "\"}";
    }

    static String timeout(String bootstrap, Map<String, String> o) throws InterruptedException {
        String topic = o.get("topic");
        Properties p = producerProps(bootstrap, o.get("txn-id"));
        p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, o.get("timeout-ms"));
        String error = "none";
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            producer.initTransactions();
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(topic, "late", "timed-out"));
            producer.flush();
            Thread.sleep(Long.parseLong(o.get("wait-ms")));
            try {
                producer.commitTransaction();
            } catch (Exception e) {
                error = rootName(e);
            }
        }
        return "{\"commit_error\":\"" + error + "\"}";
    }

    static String rootName(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t && !(t instanceof org.apache.kafka.common.KafkaException && t.getCause() == null)) {
            t = t.getCause();
        }
        return t.getClass().getSimpleName();
    }

    static String jsonList(List<String> values) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < values.size(); i++) {
            if (i > 0) {
                sb.append(',');
            }
            sb.append('"').append(values.get(i).replace("\\", "\\\\").replace("\"", "\\\"")).append('"');
        }
        return sb.append(']').toString();
    }
}
