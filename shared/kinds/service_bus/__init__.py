"""The Service Bus queue and topic actions, sent through Service Bus's REST API (no AMQP stack)."""
