use super::*;
use proptest::prelude::*;
use std::time::UNIX_EPOCH;

fn config(wait_ms: u64, base: f64, max_ms: Option<u64>, randomize: bool) -> RetryConfig {
    RetryConfig {
        retry_wait: Duration::from_millis(wait_ms),
        retry_exponential_backoff_base: base,
        retry_max_interval: max_ms.map(Duration::from_millis),
        retry_randomize: randomize,
        ..RetryConfig::default()
    }
}

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
}

#[test]
fn default_policy_doubles_from_one_second() {
    let policy = RetryPolicy::try_new(&config(1000, 2.0, None, false)).unwrap();
    let got: Vec<u64> = (0..5)
        .map(|n| policy.backoff().interval(n).as_secs())
        .collect();
    assert_eq!(got, vec![1, 2, 4, 8, 16]);
}

#[test]
fn first_retry_is_retry_wait_after_the_first_failure() {
    let policy = RetryPolicy::try_new(&RetryConfig::default()).unwrap();
    let mut state = RetryState::default();
    let verdict = policy.on_failure(&mut state, t(0), 1.0);
    assert_eq!(verdict, RetryVerdict::RetryAt(t(1)));
    assert_eq!(state.steps, 0);
    assert_eq!(state.first_failure, Some(t(0)));
}

#[test]
fn retry_max_times_allows_exactly_that_many_retries() {
    for max in 0..5u32 {
        let cfg = RetryConfig {
            retry_max_times: Some(max),
            ..RetryConfig::default()
        };
        let policy = RetryPolicy::try_new(&cfg).unwrap();
        let mut state = RetryState::default();
        let mut retries = 0;
        let mut now = t(0);
        loop {
            match policy.on_failure(&mut state, now, 0.0) {
                RetryVerdict::RetryAt(at) => {
                    retries += 1;
                    now = at;
                }
                RetryVerdict::UseSecondary => unreachable!("no secondary configured"),
                RetryVerdict::GiveUp => break,
            }
        }
        assert_eq!(retries, max);
    }
}

#[test]
fn periodic_retries_wait_a_constant_interval() {
    let cfg = RetryConfig {
        retry_type: RetryType::Periodic,
        retry_wait: Duration::from_secs(5),
        retry_randomize: false,
        ..RetryConfig::default()
    };
    let policy = RetryPolicy::try_new(&cfg).unwrap();
    assert!((0..20).all(|n| policy.backoff().interval(n) == Duration::from_secs(5)));
}

#[test]
fn retry_forever_never_gives_up() {
    let cfg = RetryConfig {
        retry_forever: true,
        retry_timeout: Duration::from_secs(1),
        retry_max_times: Some(1),
        retry_max_interval: Some(Duration::from_secs(60)),
        ..RetryConfig::default()
    };
    let policy = RetryPolicy::try_new(&cfg).unwrap();
    let mut state = RetryState::default();
    let mut now = t(0);
    for _ in 0..100 {
        match policy.on_failure(&mut state, now, 0.0) {
            RetryVerdict::RetryAt(at) => now = at,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn invalid_parameters_are_refused() {
    let bad = [
        RetryConfig {
            retry_wait: Duration::ZERO,
            ..RetryConfig::default()
        },
        RetryConfig {
            retry_exponential_backoff_base: 0.5,
            ..RetryConfig::default()
        },
        RetryConfig {
            retry_exponential_backoff_base: f64::NAN,
            ..RetryConfig::default()
        },
        RetryConfig {
            retry_max_interval: Some(Duration::from_millis(10)),
            ..RetryConfig::default()
        },
        RetryConfig {
            retry_secondary_threshold: 1.0,
            ..RetryConfig::default()
        },
        RetryConfig {
            retry_timeout: Duration::ZERO,
            ..RetryConfig::default()
        },
    ];
    for cfg in bad {
        let err = RetryPolicy::try_new(&cfg).unwrap_err();
        assert!(!err.is_retryable());
    }
}

proptest! {
    #[test]
    fn intervals_grow_monotonically_until_the_cap(
        wait_ms in 1u64..10_000,
        base in 1.0f64..4.0,
        max_ms in proptest::option::of(10_000u64..10_000_000),
    ) {
        let policy = RetryPolicy::try_new(&config(wait_ms, base, max_ms, false)).unwrap();
        let b = policy.backoff();
        let mut prev = Duration::ZERO;
        for n in 0..200 {
            let i = b.interval(n);
            prop_assert!(i >= prev, "interval {} shrank: {:?} < {:?}", n, i, prev);
            if let Some(max) = max_ms {
                prop_assert!(i <= Duration::from_millis(max));
            }
            prev = i;
        }
    }

    #[test]
    fn randomized_wait_never_exceeds_cap_plus_jitter(
        wait_ms in 1u64..10_000,
        base in 1.0f64..4.0,
        max_ms in 10_000u64..10_000_000,
        steps in 0u32..500,
        sample in -1.5f64..1.5,
    ) {
        let policy = RetryPolicy::try_new(&config(wait_ms, base, Some(max_ms), true)).unwrap();
        let b = policy.backoff();
        let i = b.interval(steps);
        let r = b.randomize(i, sample);
        let ceiling = b.ceiling().unwrap();
        prop_assert!(r <= ceiling + Duration::from_nanos(1));
        prop_assert!(r >= i.mul_f64(1.0 - RANDOMIZE_WIDTH) - Duration::from_nanos(1));
        prop_assert!(r <= i.mul_f64(1.0 + RANDOMIZE_WIDTH) + Duration::from_nanos(1));
    }

    #[test]
    fn retries_respect_the_timeout_and_give_up_after_it(
        wait_ms in 1u64..5_000,
        base in 1.0f64..3.0,
        timeout_s in 1u64..100_000,
        delays in proptest::collection::vec(0u64..50_000, 1..200),
        samples in proptest::collection::vec(-1.0f64..1.0, 200),
    ) {
        let cfg = RetryConfig {
            retry_timeout: Duration::from_secs(timeout_s),
            ..config(wait_ms, base, None, true)
        };
        let policy = RetryPolicy::try_new(&cfg).unwrap();
        let mut state = RetryState::default();
        let mut now = t(0);
        let deadline = now + Duration::from_secs(timeout_s);
        for (i, delay) in delays.iter().enumerate() {
            match policy.on_failure(&mut state, now, samples[i]) {
                RetryVerdict::RetryAt(at) => {
                    prop_assert!(now < deadline, "retry scheduled after a failure past the timeout");
                    prop_assert!(at <= deadline, "retry at {:?} beyond deadline {:?}", at, deadline);
                    prop_assert!(at >= now);
                    // The flusher may run late, never early.
                    now = at + Duration::from_millis(*delay);
                }
                RetryVerdict::UseSecondary => prop_assert!(false, "no secondary configured"),
                RetryVerdict::GiveUp => {
                    prop_assert!(now >= deadline);
                    break;
                }
            }
        }
    }

    #[test]
    fn secondary_switch_happens_once_after_threshold_and_before_giving_up(
        timeout_s in 10u64..100_000,
        threshold in 0.05f64..0.95,
    ) {
        let cfg = RetryConfig {
            retry_timeout: Duration::from_secs(timeout_s),
            retry_secondary_threshold: threshold,
            has_secondary: true,
            ..config(1000, 2.0, None, true)
        };
        let policy = RetryPolicy::try_new(&cfg).unwrap();
        let mut state = RetryState::default();
        let start = t(0);
        let mut now = start;
        let mut switches = 0;
        let mut gave_up = false;
        for _ in 0..10_000 {
            match policy.on_failure(&mut state, now, 0.3) {
                RetryVerdict::RetryAt(at) => now = at,
                RetryVerdict::UseSecondary => {
                    switches += 1;
                    let earliest = start + Duration::from_secs(timeout_s).mul_f64(threshold);
                    prop_assert!(now >= earliest);
                    prop_assert!(state.secondary);
                    now = state.next_at.unwrap();
                }
                RetryVerdict::GiveUp => {
                    gave_up = true;
                    break;
                }
            }
        }
        prop_assert!(gave_up);
        prop_assert_eq!(switches, 1);
    }
}
