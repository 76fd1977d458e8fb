package store

// WireFields is wireFields.
var WireFields = wireFields

// SnapshotFields and MetaFields are snapshotFields and metaFields.
var SnapshotFields, MetaFields = snapshotFields, metaFields
