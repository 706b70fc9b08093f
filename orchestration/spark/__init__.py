"""The same project on Apache Spark: the `spark` target, its session and its build."""
