use super::*;

const MIN5: Millis = 300_000;

/// A deterministic noise in [-1, 1] (a linear congruential generator).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

/// A series every 5 minutes: a daily sine of `amplitude` around 100 plus noise.
fn daily(days: i64, amplitude: f64, seed: u64) -> Vec<(Millis, f64)> {
    let mut noise = Noise(seed);
    (0..days * 288)
        .map(|i| {
            let t = i * MIN5;
            let phase = (t % DAY) as f64 / DAY as f64 * std::f64::consts::TAU;
            (t, 100.0 + amplitude * phase.sin() + noise.next())
        })
        .collect()
}

fn run(d: &Detector, st: &mut DetectorState, series: &[(Millis, f64)]) -> Vec<Verdict> {
    series.iter().map(|&(t, x)| d.observe(st, t, x)).collect()
}

fn max_score(v: &[Verdict]) -> f64 {
    v.iter().map(|v| v.score).fold(0.0, f64::max)
}

#[test]
fn noise_around_a_daily_rhythm_scores_low() {
    let d = Detector::default();
    let mut st = DetectorState::default();
    let v = run(&d, &mut st, &daily(10, 50.0, 7));
    let late = &v[288 * 3..];
    assert!(max_score(late) < 0.5, "max {}", max_score(late));
}

#[test]
fn a_value_normal_at_the_peak_is_an_anomaly_at_night() {
    let d = Detector::default();
    let mut st = DetectorState::default();
    let series = daily(9, 50.0, 3);
    // Day 8 at 18:00 is the trough (about 50); the peak's value is 150.
    let night_at = 8 * 288 + 18 * 12;
    run(&d, &mut st, &series[..night_at]);
    eprintln!("{:?}", st.errors);
    let mut night = st.clone();
    let v = d.observe(&mut night, series[night_at].0, 150.0);
    assert!(v.score > 0.8, "{v:?}");
    assert!((v.expected - 50.0).abs() < 5.0, "{v:?}");
    let (lo, hi) = v.band();
    assert!(lo < 50.0 && 50.0 < hi && hi < 150.0, "{lo}..{hi}");
    // The same value at 06:00, the peak, is normal.
    let peak_at = 8 * 288 + 6 * 12;
    let mut st = DetectorState::default();
    run(&d, &mut st, &series[..peak_at]);
    let v = d.observe(&mut st, series[peak_at].0, 150.0);
    assert!(v.score < 0.3, "{v:?}");
}

#[test]
fn direction_filters_the_side() {
    let above = Detector::new(DetectorParams {
        direction: Direction::Above,
        ..DetectorParams::default()
    });
    let mut st = DetectorState::default();
    let series = daily(2, 0.0, 5);
    run(&above, &mut st, &series);
    let t = series.last().unwrap().0 + MIN5;
    assert_eq!(above.observe(&mut st.clone(), t, 60.0).score, 0.0);
    assert!(above.observe(&mut st.clone(), t, 140.0).score > 0.8);
}

#[test]
fn an_incident_does_not_become_normal_until_accepted() {
    let d = Detector::new(DetectorParams {
        accept_after: 24,
        ..DetectorParams::default()
    });
    let mut st = DetectorState::default();
    let series = daily(2, 0.0, 11);
    run(&d, &mut st, &series);
    let t0 = series.last().unwrap().0;
    let shifted: Vec<_> = (1..=60).map(|i| (t0 + i * MIN5, 130.0)).collect();
    let v = run(&d, &mut st, &shifted);
    assert!(v[0].score > 0.5, "{:?}", v[0]);
    assert!(v[..23].iter().all(|v| v.episode > 0.5), "{:?}", &v[..23]);
    assert!(v[40..].iter().all(|v| v.episode < 0.3), "{:?}", &v[40..]);
}

#[test]
fn warmup_never_scores() {
    let d = Detector::default();
    let mut st = DetectorState::default();
    let v: Vec<_> = (0..32)
        .map(|i| d.observe(&mut st, i * MIN5, if i % 2 == 0 { 0.0 } else { 1e9 }))
        .collect();
    assert!(v.iter().all(|v| v.score == 0.0));
}

#[test]
fn non_finite_values_are_ignored() {
    let d = Detector::default();
    let mut st = DetectorState::default();
    run(&d, &mut st, &daily(1, 10.0, 1));
    let before = st.clone();
    assert_eq!(d.observe(&mut st, DAY, f64::NAN).score, 0.0);
    assert_eq!(st, before);
}

/// A default detector, its state after eight days of a daily rhythm, and the
/// ninth day still to come.
fn eight_days_learned() -> (Detector, DetectorState, Vec<(Millis, f64)>) {
    let d = Detector::default();
    let mut st = DetectorState::default();
    let mut series = daily(9, 30.0, 13);
    run(&d, &mut st, &series[..288 * 8]);
    let rest = series.split_off(288 * 8);
    (d, st, rest)
}

#[test]
fn state_round_trips_through_json_and_goes_on_identically() {
    let (d, mut st, rest) = eight_days_learned();
    let json = serde_json::to_string(&st).unwrap();
    let mut back: DetectorState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, st);
    assert_eq!(run(&d, &mut back, &rest), run(&d, &mut st, &rest));
}

#[test]
fn a_snapshot_without_choice_errors_goes_on_from_its_errors() {
    let (d, st, rest) = eight_days_learned();
    let mut json: serde_json::Value = serde_json::to_value(&st).unwrap();
    json.as_object_mut().unwrap().remove("choice");
    let mut old: DetectorState = serde_json::from_value(json).unwrap();
    assert_eq!(old.choice, [0.0; 4]);
    run(&d, &mut old, &rest[..1]);
    for m in MODELS {
        let i = m as usize;
        assert!(
            old.choice[i] > 0.5 * old.errors[i],
            "{m:?}: choice {} against error {}",
            old.choice[i],
            old.errors[i]
        );
    }
}

#[test]
fn weekly_state_fits_the_budget() {
    let d = Detector::default();
    let mut st = DetectorState::default();
    run(&d, &mut st, &daily(15, 30.0, 17));
    assert!(st.weekly.is_some() && st.daily.is_some());
    let bytes = std::mem::size_of::<DetectorState>() + st.heap_bytes();
    eprintln!("detector state with weekly profile: {bytes} bytes");
    assert!(bytes <= 8 * 1024, "{bytes} bytes");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn series() -> impl Strategy<Value = Vec<(Millis, f64)>> {
        prop::collection::vec((1i64..3_600_000, -1e6f64..1e6), 1..400).prop_map(|steps| {
            let mut t = 0;
            steps
                .into_iter()
                .map(|(gap, x)| {
                    t += gap;
                    (t, x)
                })
                .collect()
        })
    }

    proptest! {
        /// Causal: the scores of a prefix never change when more data follows.
        #[test]
        fn scores_of_a_prefix_do_not_depend_on_what_follows(s in series(), cut in 0usize..400) {
            let d = Detector::default();
            let cut = cut.min(s.len());
            let full = run(&d, &mut DetectorState::default(), &s);
            let prefix = run(&d, &mut DetectorState::default(), &s[..cut]);
            prop_assert_eq!(&full[..cut], &prefix[..]);
        }

        /// Scores stay in [0, 1) and bands are ordered, whatever arrives.
        #[test]
        fn scores_are_in_range(s in series()) {
            let d = Detector::default();
            let mut st = DetectorState::default();
            for &(t, x) in &s {
                let v = d.observe(&mut st, t, x);
                prop_assert!((0.0..1.0).contains(&v.score) && (0.0..1.0).contains(&v.episode));
                let (lo, hi) = v.band();
                prop_assert!(lo <= v.expected && v.expected <= hi);
            }
        }

        /// Snapshots: the state round-trips through JSON exactly at any point.
        #[test]
        fn state_round_trips_at_any_point(s in series(), cut in 0usize..400) {
            let d = Detector::default();
            let mut st = DetectorState::default();
            run(&d, &mut st, &s[..cut.min(s.len())]);
            let back: DetectorState = serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
            prop_assert_eq!(back, st);
        }
    }
}

#[test]
fn a_peek_judges_like_observe_without_learning() {
    let d = Detector::default();
    let mut st = DetectorState::default();
    let series = daily(3, 10.0, 5);
    run(&d, &mut st, &series);
    let t = series.last().unwrap().0 + MIN5;
    let normal = series[series.len() - 288].1;
    // A shift of 3 scales: a peek sees what observing it would (sustained
    // statistic included), without learning it.
    let shifted = normal + 3.0 * d.peek(&st, t, normal, |_| 0.0).scale;
    let before = st.clone();
    let peeked = d.peek(&st, t, shifted, |_| 0.0);
    assert_eq!(st, before, "peek learns nothing");
    let observed = d.observe(&mut st.clone(), t, shifted);
    assert!(
        (peeked.surprise - observed.surprise).abs() < 1e-9,
        "{peeked:?} vs {observed:?}"
    );
}

#[test]
fn a_spike_beyond_every_earlier_one_is_new_ground() {
    let d = Detector::default();
    let mut st = DetectorState::default();
    // Ten days with a +40 spike every 50 observations: spikes are usual here.
    let mut series = daily(10, 30.0, 23);
    for (i, p) in series.iter_mut().enumerate() {
        if i % 50 == 25 {
            p.1 += 40.0;
        }
    }
    let verdicts = run(&d, &mut st, &series);
    let late = &verdicts[288 * 9..];
    assert!(
        late.iter().all(|v| !v.novel),
        "the usual spikes are known ground"
    );
    let t = series.last().unwrap().0;
    // A spike three times as high lands where the series has never been.
    let v = d.observe(&mut st, t + MIN5, 100.0 + 120.0);
    assert!(v.novel, "{v:?}");
    assert!(v.score >= score_of(NOVEL_SURPRISE) - 1e-12, "{v:?}");
    // The same height again soon after is not news a second time.
    let again = d.observe(&mut st, t + 2 * MIN5, 100.0 + 120.0);
    assert!(!again.novel, "{again:?}");
}

#[test]
fn new_ground_must_hold_without_the_sampling_noise() {
    let d = Detector::default();
    let mut st = DetectorState::default();
    let series = daily(10, 30.0, 23);
    run(&d, &mut st, &series);
    let highest = series.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let x = highest + 60.0;
    // Without sampling noise, 60 above the highest value seen is new ground.
    assert_eq!(d.ground(&st, x, 90.0, false, 0.0), Ground::New);
    // A window whose sampling alone moves it by 70 might have landed on known
    // ground: its step past the highest seen is not new.
    assert_ne!(d.ground(&st, x, 90.0, false, 70.0), Ground::New);
    // Further out, it is new even after taking the noise back.
    assert_eq!(d.ground(&st, x + 140.0, 230.0, false, 70.0), Ground::New);
}

#[test]
fn a_day_long_drop_does_not_become_the_baseline_within_the_day() {
    // Every 30 minutes: a daily sine around 100 with noise of ±10 (a mean
    // absolute error of about 5), for four weeks; then a holiday 15 below
    // (three scales: not clipped as an outlier, so each observation is
    // learned), as a city's taxi rides are on Christmas Day.
    const MIN30: Millis = 1_800_000;
    let mut noise = Noise(11);
    let normal = |t: Millis| {
        let phase = (t % DAY) as f64 / DAY as f64 * std::f64::consts::TAU;
        100.0 + 50.0 * phase.sin()
    };
    let d = Detector::default();
    let mut st = DetectorState::default();
    let weeks = 4 * 7 * 48;
    for i in 0..weeks {
        let t = i * MIN30;
        d.observe(&mut st, t, normal(t) + 10.0 * noise.next());
    }
    let mut last = None;
    for i in weeks..weeks + 24 {
        let t = i * MIN30;
        last = Some((
            t,
            d.observe(&mut st, t, normal(t) - 15.0 + 10.0 * noise.next()),
        ));
    }
    let (t, v) = last.unwrap();
    // Twelve hours in, the baseline still expects the usual day.
    let followed = normal(t) - v.expected;
    assert!(followed < 0.3 * 15.0, "followed {followed:.1} of 15: {v:?}");
}
