#!/bin/bash
# kpistream's Kafka topics, run from the apache/kafka image (its kafka-topics.sh).
#   topics.sh create   create the topics listed in $TOPICS_FILE with $KPISTREAM_PARTITIONS
#                      partitions (replication $KPISTREAM_KAFKA_REPLICATION_FACTOR), and fail
#                      when one exists with another partition count: the workers expect it
#   topics.sh wait     wait until every topic exists (the workers' init container), so no
#                      worker subscribes first and has the broker auto-create a topic
# The connection comes from the kpistream-env ConfigMap and the kpistream Secret, as the
# workers' does: KPISTREAM_BROKER (kafka://h1:9092;h2:9092), KPISTREAM_KAFKA_SECURITY_PROTOCOL,
# KPISTREAM_KAFKA_SASL_MECHANISM, KPISTREAM_KAFKA_SASL_USERNAME, KPISTREAM_KAFKA_SASL_PASSWORD.
set -euo pipefail

mode=${1:?usage: topics.sh create|wait}
topics_file=${TOPICS_FILE:-/etc/kpistream-topics/topics}
read -r -a topics < "$topics_file" || true  # one line, maybe without a newline
[ ${#topics[@]} -gt 0 ] || { echo "topics.sh: no topic in $topics_file" >&2; exit 2; }
partitions=${KPISTREAM_PARTITIONS:?KPISTREAM_PARTITIONS is not set}
bootstrap=$(printf '%s' "${KPISTREAM_BROKER:?KPISTREAM_BROKER is not set}" | sed -e 's#kafka://##g' -e 's#;#,#g')
kafka_topics=/opt/kafka/bin/kafka-topics.sh

config=$(mktemp)
trap 'rm -f "$config"' EXIT
protocol=${KPISTREAM_KAFKA_SECURITY_PROTOCOL:-PLAINTEXT}
echo "security.protocol=$protocol" > "$config"
case "$protocol" in
    SASL_*)
        mechanism=${KPISTREAM_KAFKA_SASL_MECHANISM:-PLAIN}
        case "$mechanism" in
            PLAIN) module=org.apache.kafka.common.security.plain.PlainLoginModule ;;
            SCRAM-SHA-256|SCRAM-SHA-512) module=org.apache.kafka.common.security.scram.ScramLoginModule ;;
            *) echo "topics.sh: KPISTREAM_KAFKA_SASL_MECHANISM=$mechanism is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512" >&2; exit 2 ;;
        esac
        {
            echo "sasl.mechanism=$mechanism"
            echo "sasl.jaas.config=$module required username=\"${KPISTREAM_KAFKA_SASL_USERNAME:?}\" password=\"${KPISTREAM_KAFKA_SASL_PASSWORD:?}\";"
        } >> "$config"
        ;;
esac

kt() { "$kafka_topics" --bootstrap-server "$bootstrap" --command-config "$config" "$@"; }

partitions_of() {  # the partition count of topic $1, empty when it does not exist
    kt --describe --topic "$1" 2>/dev/null | sed -n 's/.*PartitionCount: *\([0-9][0-9]*\).*/\1/p' | head -n 1
}

case "$mode" in
    create)
        for topic in "${topics[@]}"; do
            kt --create --if-not-exists --topic "$topic" --partitions "$partitions" \
                ${KPISTREAM_KAFKA_REPLICATION_FACTOR:+--replication-factor "$KPISTREAM_KAFKA_REPLICATION_FACTOR"}
            found=$(partitions_of "$topic")
            if [ "$found" != "$partitions" ]; then
                echo "topics.sh: $topic has ${found:-no} partitions, the workers expect $partitions (KPISTREAM_PARTITIONS)" >&2
                exit 1
            fi
            echo "topics.sh: $topic has $partitions partitions"
        done
        ;;
    wait)
        for topic in "${topics[@]}"; do
            until [ -n "$(partitions_of "$topic")" ]; do
                echo "topics.sh: waiting for topic $topic on $bootstrap"
                sleep 5
            done
        done
        echo "topics.sh: all ${#topics[@]} topics exist"
        ;;
    *)
        echo "usage: topics.sh create|wait" >&2
        exit 2
        ;;
esac
