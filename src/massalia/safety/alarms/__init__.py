"""Alarms of the public-safety domain: rules declared in YAML/JSON, evaluated on ingest, with durable state.

- :mod:`~massalia.safety.alarms.rules`: the rule kinds (threshold, frequency, spike, geofence, new term,
  silence), validated with pydantic (errors name the field), versioned rule sets;
- :mod:`~massalia.safety.alarms.state`: the alarm tables (one open alarm per rule and key, its history);
- :mod:`~massalia.safety.alarms.engine`: the evaluator fed by the live ingest, and the timer (silence,
  escalation, end of a snooze) -- the one place a wall clock is read.
"""
