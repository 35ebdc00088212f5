#!/bin/bash
# autojoin node bootstrap: the launch template's user data (docs/node-agent.md).
#
# This file is a CloudFormation Fn::Sub template: template.yaml carries it byte for byte
# (tests/template checks that) and CloudFormation fills in the dollar-brace names below.
# Shell variables are therefore written $like_this, never with braces.
#
# It holds no secret and gets none: the join token reaches this node later, through the node's own
# read-once hand-off row (docs/token-delivery.md). Everything here is readable by anyone who may
# call ec2:DescribeInstanceAttribute, and that is fine.
#
# Steps: keep SSM away until the node is ready; write the agent, its settings and the
# autojoin-node command; install and start Docker; mark the node ready; let SSM in. The control
# plane (on_launch) sees the node through SSM only once all of this worked.
set -euo pipefail
umask 022

# 1. No SSM command may arrive before the node can run it: hold the SSM agent until the end.
#    The trap starts it again even when a step fails, so the node stays reachable for debugging;
#    without the ready marker autojoin-node then answers {"error": "node_not_ready"}.
systemctl stop amazon-ssm-agent || true
trap 'systemctl start amazon-ssm-agent || true' EXIT
rm -f /var/lib/autojoin/ready

# 2. The agent (autojoin/node/agent.py, stdlib + boto3), shipped gzip+base64 because the plain file
#    would not fit the 16 KB user data limit. Its SHA-256 is checked before it is installed.
install -d -m 0755 /opt/autojoin /var/lib/autojoin
install -d -m 0700 /etc/autojoin
echo '${AgentGzipBase64}' | base64 -d | gunzip > /opt/autojoin/agent.py.new
echo '${AgentSha256}  /opt/autojoin/agent.py.new' | sha256sum -c --quiet -
mv /opt/autojoin/agent.py.new /opt/autojoin/agent.py
chmod 0644 /opt/autojoin/agent.py

# 3. Settings the agent reads from /etc/autojoin/agent.env: names and ARNs only, never a value of a
#    secret. A worker gets no secret id at all (its role may not touch either secret anyway).
cat > /etc/autojoin/agent.env <<'AUTOJOIN_ENV'
AUTOJOIN_CLUSTER=${ClusterName}
AUTOJOIN_NODE_ROLE=${NodeRole}
AUTOJOIN_HANDOFF_TABLE=${HandoffTable}
AUTOJOIN_MANAGER_SECRET_ID=${ManagerSecretId}
AUTOJOIN_WORKER_SECRET_ID=${WorkerSecretId}
AWS_REGION=${AWS::Region}
AUTOJOIN_ENV
chmod 0600 /etc/autojoin/agent.env

# 4. The command the control plane runs through SSM (AWS-RunShellScript, as root).
cat > /usr/local/bin/autojoin-node <<'AUTOJOIN_CMD'
#!/bin/bash
if [ ! -e /var/lib/autojoin/ready ]; then
  echo '{"error": "node_not_ready", "detail": "user data has not finished"}'
  exit 1
fi
exec /usr/bin/python3 /opt/autojoin/agent.py "$@"
AUTOJOIN_CMD
chmod 0755 /usr/local/bin/autojoin-node
ln -sf /usr/local/bin/autojoin-node /usr/bin/autojoin-node

# 5. Docker and boto3 from the distribution (AL2023). boto3 falls back to pip if the image's
#    repository has no python3-boto3.
dnf install -y docker
dnf install -y python3-boto3 || { dnf install -y python3-pip && python3 -m pip install boto3; }
systemctl enable --now docker
docker info > /dev/null

# 6. Ready: the EXIT trap now starts the SSM agent, and on_launch can run `autojoin-node join`.
touch /var/lib/autojoin/ready
echo "autojoin: node ready (cluster ${ClusterName}, role ${NodeRole})"
