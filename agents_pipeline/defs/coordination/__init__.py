"""Coordination: the task queue agents hand work out through (sql/0014, issue #18).

The agent side is ``core/tasks.py`` (SharedState) and the ``fleet.*`` task functions; this
domain is the operator's side: ``queue.py`` reads the queue's state per kind as plain functions
over the database, ``dead_letters.py`` requeues or drops dead letters, and the Dagster face is
the ``task_queue`` asset with its checks, ``task_queue_sensor`` and ``dead_letter_job``.
"""
