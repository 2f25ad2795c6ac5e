//! Validated NATS subject-token names (users, rooms, groups).
