"""Karpenter's interruption queue: EC2 and AWS Health events delivered to SQS ahead of a node's loss.

With it Karpenter cordons and drains a node when EC2 announces a spot interruption (two minutes' notice), a
rebalance recommendation, a scheduled maintenance or a state change, instead of losing its pods when the
instance disappears. Modelled on aws/karpenter-provider-aws v1.14.1 website/content/en/v1.14/getting-started/
getting-started-with-karpenter/cloudformation.yaml (`KarpenterInterruptionQueue`, its `QueuePolicy` and the five
`AWS::Events::Rule`s): the queue keeps messages 300 s with SQS-managed encryption, only EventBridge and SQS may
send to it, and anything over plain HTTP is denied. The controller reads it (`settings.interruptionQueue`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

MESSAGE_RETENTION_SECONDS = 300
TARGET_ID = "KarpenterInterruptionQueueTarget"
# rule name suffix -> (event source, detail-type), as in the upstream template.
EVENT_RULES: dict[str, tuple[str, str]] = {
    "scheduled-change": ("aws.health", "AWS Health Event"),
    "spot-interruption": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "instance-state-change": ("aws.ec2", "EC2 Instance State-change Notification"),
    "capacity-reservation-interruption": (
        "aws.ec2",
        "EC2 Capacity Reservation Instance Interruption Warning",
    ),
}


def event_pattern(source: str, detail_type: str) -> str:
    return json.dumps({"source": [source], "detail-type": [detail_type]}, sort_keys=True)


def queue_policy(queue_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Id": "EC2InterruptionPolicy",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            },
            {
                "Sid": "DenyHTTP",
                "Effect": "Deny",
                "Action": "sqs:*",
                "Resource": queue_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                "Principal": "*",
            },
        ],
    }


@dataclass(frozen=True)
class InterruptionQueueArgs:
    queue_name: str
    """Karpenter's `settings.interruptionQueue`; the upstream template names it after the cluster."""
    tags: dict[str, str] = field(default_factory=dict)


class InterruptionQueue(pulumi.ComponentResource):
    """The SQS queue, its policy, and one EventBridge rule + target per interruption event."""

    def __init__(self, name: str, args: InterruptionQueueArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:aws:InterruptionQueue", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.queue = aws.sqs.Queue(
            name,
            name=args.queue_name,
            message_retention_seconds=MESSAGE_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            tags=dict(args.tags),
            opts=child,
        )
        self.queue_name = args.queue_name
        self.policy = aws.sqs.QueuePolicy(
            f"{name}-policy",
            queue_url=self.queue.url,
            policy=self.queue.arn.apply(lambda arn: json.dumps(queue_policy(arn), sort_keys=True)),
            opts=pulumi.ResourceOptions(parent=self.queue),
        )
        self.rules: list[aws.cloudwatch.EventRule] = []
        for suffix, (source, detail_type) in EVENT_RULES.items():
            rule = aws.cloudwatch.EventRule(
                f"{name}-{suffix}",
                description=f"Karpenter interruption handling: {detail_type}",
                event_pattern=event_pattern(source, detail_type),
                tags=dict(args.tags),
                opts=child,
            )
            aws.cloudwatch.EventTarget(
                f"{name}-{suffix}",
                rule=rule.name,
                target_id=TARGET_ID,
                arn=self.queue.arn,
                opts=pulumi.ResourceOptions(parent=rule, depends_on=[self.policy]),
            )
            self.rules.append(rule)
        self.register_outputs({"queueName": args.queue_name, "queueArn": self.queue.arn})
