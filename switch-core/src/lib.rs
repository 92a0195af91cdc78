//! Bridges, PMD threads, action execution, L2 learning and statistics. Filled by issue 3; nothing
//! here yet.
