"""The same project on Apache Spark: the `spark` target, its session and its build, and a standalone
cluster on this machine to send it to."""
