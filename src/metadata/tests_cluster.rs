//! Unit tests: fencing, elections, AlterPartition and replica placement.
