"""The scheduling engine: its records, its pure decisions (planning), the dispatcher, the
executor, a job's final state (final_state) and the operations behind the API (service)."""
