//! Counter sets declared by one list.
//!
//! A port's counters exist in several forms that must agree: relaxed atomics the datapath adds
//! to, a plain snapshot readers get, and the names and descriptions the management plane shows
//! them by (JSON keys in order, the API reference, the metrics). [`counters!`] makes every form
//! from one list, so that a new counter is one entry there.

/// How the management plane names and describes one counter of a set declared by one list
/// (such as [`PortStats::FIELDS`](crate::PortStats::FIELDS)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterInfo {
    /// The field's name, also its JSON key and part of its metric's name.
    pub name: &'static str,
    /// What it counts, as the API reference says.
    pub api: &'static str,
    /// What it counts, as the metric's help text says.
    pub metric: &'static str,
}

/// Defines a snapshot struct of `u64` counters and a struct of the same counters as atomics,
/// from one list:
///
/// ```text
/// counters! {
///     /// Doc of the snapshot struct.
///     pub struct Stats;
///     /// Doc of the atomic struct.
///     pub struct Counters;
///
///     /// Doc of the field.
///     name { api: "API description.", metric: "Metric help." },
/// }
/// ```
///
/// The snapshot struct gets [`CounterInfo`]s of its fields (`FIELDS`) and their values in the
/// same order (`values()`); the atomic one gets `snapshot()`. Adding to the atomics is left to
/// the owner, which knows how its updates group (one burst adds several counters).
macro_rules! counters {
    (
        $(#[$stats_meta:meta])*
        pub struct $stats:ident;
        $(#[$live_meta:meta])*
        pub struct $live:ident;
        $(
            $(#[doc = $doc:literal])*
            $name:ident { api: $api:literal, metric: $metric:literal $(,)? }
        ),+ $(,)?
    ) => {
        $(#[$stats_meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $stats {
            $( $(#[doc = $doc])* pub $name: u64, )+
        }

        impl $stats {
            /// Number of counters.
            pub const LEN: usize = [$(stringify!($name)),+].len();

            /// Every counter, in field order: the order the management API and the metrics
            /// list them in.
            pub const FIELDS: [$crate::CounterInfo; Self::LEN] = [$(
                $crate::CounterInfo { name: stringify!($name), api: $api, metric: $metric },
            )+];

            /// The counters' values, in the order of [`FIELDS`](Self::FIELDS).
            pub fn values(&self) -> [u64; Self::LEN] {
                [$(self.$name),+]
            }
        }

        $(#[$live_meta])*
        #[derive(Debug, Default)]
        pub struct $live {
            $(
                #[doc = concat!("See [`", stringify!($stats), "::", stringify!($name), "`].")]
                pub $name: ::std::sync::atomic::AtomicU64,
            )+
        }

        impl $live {
            /// Reads all counters.
            pub fn snapshot(&self) -> $stats {
                $stats {
                    $( $name: self.$name.load(::std::sync::atomic::Ordering::Relaxed), )+
                }
            }
        }
    };
}

pub(crate) use counters;

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    counters! {
        /// Test snapshot.
        pub struct Stats;
        /// Test counters.
        pub struct Counters;

        /// First.
        first { api: "First.", metric: "The first." },
        /// Second.
        second { api: "Second.", metric: "The second." },
    }

    #[test]
    fn fields_values_and_snapshot_follow_the_list() {
        let names: Vec<&str> = Stats::FIELDS.iter().map(|f| f.name).collect();
        assert_eq!(names, ["first", "second"]);
        assert_eq!(Stats::FIELDS[1].api, "Second.");
        assert_eq!(Stats::FIELDS[1].metric, "The second.");
        let c = Counters::default();
        c.first.fetch_add(3, Ordering::Relaxed);
        c.second.fetch_add(5, Ordering::Relaxed);
        let s = c.snapshot();
        assert_eq!(
            s,
            Stats {
                first: 3,
                second: 5
            }
        );
        assert_eq!(s.values(), [3, 5]);
    }
}
