#!/bin/sh
# docker-compose's Kafka: the same server.properties as the local stack (deploy/kafka/server.properties),
# with the compose network's listeners, SCRAM users for every principal written at format time, and
# the passwords from the environment (.env, made by `mgrid stack compose-env`). Run by the
# apache/kafka image in place of its own entrypoint.
set -eu
conf=/tmp/mgrid-kafka
mkdir -p "$conf" /var/lib/kafka/data
props="$conf/server.properties"
sed -e "s|\${node_id}|1|" \
    -e "s|\${quorum_bootstrap}|kafka:9093|" \
    -e "s|\${log_dirs}|/var/lib/kafka/data|" \
    -e "s|\${replication}|1|g" -e "s|\${min_isr}|1|g" \
    -e "s|\${broker_password}|$MGRID_KAFKA_BROKER_PASSWORD|" \
    -e "s|\${controller_password}|$MGRID_KAFKA_CONTROLLER_PASSWORD|g" \
    -e "s|^listeners=.*|listeners=CLIENT://:9092,CONTROLLER://:9093,HOST://:59092|" \
    -e "s|^advertised.listeners=.*|advertised.listeners=CLIENT://kafka:9092,CONTROLLER://kafka:9093,HOST://127.0.0.1:59092|" \
    -e "s|^listener.security.protocol.map=.*|listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT,HOST:SASL_PLAINTEXT|" \
    /mgrid/server.properties > "$props"
# The HOST listener authenticates like the CLIENT one.
grep '^listener.name.client.scram-sha-512' "$props" | sed 's/^listener.name.client/listener.name.host/' >> "$props"
cat > "$conf/admin.properties" <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$MGRID_KAFKA_ADMIN_PASSWORD";
PROPS
scram=""
for user in admin broker topology envelope_lifecycle balancing compatibility_adapter simulator legacy; do
  var="MGRID_KAFKA_$(echo "$user" | tr 'a-z' 'A-Z')_PASSWORD"
  eval "password=\${$var}"
  scram="$scram --add-scram SCRAM-SHA-512=[name=$user,password=$password]"
done
# shellcheck disable=SC2086 # one argument per word, on purpose
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --standalone -t "$CLUSTER_ID" -c "$props" $scram
exec /opt/kafka/bin/kafka-server-start.sh "$props"
