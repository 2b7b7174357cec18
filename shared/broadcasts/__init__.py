"""Broadcast jobs: IoT Hub's jobs API (`/api/jobs/v2`) on our own device registry, with AWS IoT
Jobs' rollout rate, abort criteria and retries (docs/broadcasts.md)."""
