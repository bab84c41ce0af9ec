"""The Pulumi program: load this stack's config, validate it, declare its platform."""

from mlops_infra.platform.stack import program

program()
