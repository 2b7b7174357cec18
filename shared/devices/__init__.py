"""The device registry and its query language (IoT Hub-compatible)."""
