//! The adaptive anomaly detector behind the `anomaly` rule kind and
//! `forewarn detect`: one series in, one explained score out per observation.
//!
//! It learns online and causally (an observation is scored before it is
//! learned), with no parameters a user must set per series:
//!
//! - **Competing predictors.** A fast level (the series as it just was), a slow
//!   level, a daily profile on a level and a weekly correction on top of it,
//!   each forecasting the next value. The one with the smallest recent mean
//!   absolute error is believed; a seasonal one only once it has seen its
//!   period. A random walk is judged against its last value, a daily rhythm
//!   against the same hour yesterday, a weekend against last weekend.
//! - **Robust learning.** Every update is clipped at a few scales, so an
//!   incident moves the baseline only slowly and does not become the new
//!   normal; a shift that persists for `accept_after` observations is
//!   accepted and the levels jump to it. Once the weekly rhythm is known,
//!   the profiles' offsets move by at most a fraction of a scale per
//!   observation; and the model believed is chosen by errors over a longer
//!   memory than the scale's. So a day-long anomaly (a holiday) neither
//!   becomes the baseline nor hands the choice to the fast level, which
//!   would follow it.
//! - **Surprise in nats.** The residual over the believed model's mean absolute
//!   error is the negative log tail probability of a Laplace error (what
//!   heavy-tailed operational data looks like), and so is a short average of
//!   residuals against its own scale (a small shift that persists). The larger
//!   of the two, in the configured direction, maps monotonically to a score
//!   in [0, 1).
//! - **New ground.** A value outside the normal band, where the series has
//!   never been since its warm-up (see [`Novelty`]), is at least [`NOVEL_SURPRISE`] surprising,
//!   however wide the recent scale or however often the residual test has
//!   been surprised before.
//!
//! The state is plain numbers (no NaN), serialisable for snapshots; with a
//! daily profile of 288 slots and a weekly one of 168 it is about 2.5 KiB.

mod cadence;
mod calibration;
mod novelty;
mod season;

use serde::{Deserialize, Serialize};

pub use cadence::Cadence;
pub use calibration::Tail;
pub use novelty::{Ground, Novelty};
pub use season::Profile;

use crate::time::Millis;

const DAY: Millis = 86_400_000;
const WEEK: Millis = 7 * DAY;
const HOUR: Millis = 3_600_000;

/// Most slots of a daily profile (5-minute slots).
const DAILY_SLOTS: usize = 288;
/// Most slots of a weekly profile (hour-of-week slots).
const WEEKLY_SLOTS: usize = 168;

/// Residuals beyond this many scales are clipped when learning, and count as
/// outliers toward accepting a shift.
const CLIP: f64 = 4.0;
/// Observations a model's error average covers.
const ERROR_MEMORY: f64 = 128.0;
/// Observations the error a model is chosen by averages over: four
/// [`ERROR_MEMORY`]s, so an anomaly that lasts a day (a holiday sampled every
/// 30 minutes is 48 observations) does not hand the choice to the fast level,
/// which follows it, for the days after.
const CHOICE_MEMORY: f64 = 4.0 * ERROR_MEMORY;
/// Largest step, in the profile model's scales, that an update moves a
/// daily or weekly offset by once the weekly profile is ready: the offsets
/// then only follow a drifting level, and the hours of an incident (or a
/// holiday) move them little. Before, the daily offset is what follows a
/// weekend's lower level, and steps up to [`CLIP`] scales. A shift that
/// persists beyond [`CLIP`] scales is taken at once by
/// `Detector::accept_shift`.
const OFFSET_CLIP: f64 = 0.3;
/// Observations a model must have predicted before it can be believed.
const MODEL_WARMUP: u32 = 8;
/// Weight of the newest residual in the short residual average (a half-life
/// of about two observations).
const SHORT_WEIGHT: f64 = 0.3;
/// Weight of the newest absolute residual in the volatility average (a
/// half-life of about seven observations).
const VOLATILITY_WEIGHT: f64 = 0.1;
/// Weight of the newest value in the fast level.
const FAST_WEIGHT: f64 = 0.5;
/// Model errors up to this many sampling-noise deviations are all noise to
/// [`Detector::believed`].
const NOISE_SKILL: f64 = 1.25;
/// Within this many of a profile's scales of what the profile holds for the
/// slot, a value is usual for the hour (see `Detector::usual_for_the_hour`).
const USUAL_SCALES: f64 = 2.0;
/// Calibrated surprise (nats, a one-in-seven-or-rarer observation) that
/// keeps an episode going.
const EPISODE_NATS: f64 = 2.0;
/// Half-width of the normal band in scales: a Laplace error stays within 3
/// scales 95% of the time.
pub const BAND_SCALES: f64 = 3.0;
/// Surprise (nats) at which the score is one half.
pub const HALF_SCORE_SURPRISE: f64 = 9.0;
/// Least surprise (nats) of a value on new ground (score 2/3: above the
/// default sensitivity, below the strictest ones).
pub const NOVEL_SURPRISE: f64 = 2.0 * HALF_SCORE_SURPRISE;

/// Which deviations count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Only values above the expected band.
    Above,
    /// Only values below it.
    Below,
    /// Both.
    #[default]
    Both,
}

impl Direction {
    fn admits(self, residual: f64) -> bool {
        match self {
            Direction::Above => residual > 0.0,
            Direction::Below => residual < 0.0,
            Direction::Both => true,
        }
    }
}

/// How a detector judges one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorParams {
    /// Which deviations count.
    pub direction: Direction,
    /// Observations scored 0 while the baseline forms.
    pub warmup: u32,
    /// Observations the slow level averages over.
    pub level_memory: f64,
    /// Consecutive outliers on one side after which a shift is accepted as the
    /// new normal.
    pub accept_after: u32,
    /// Learn a daily profile.
    pub daily: bool,
    /// Learn a weekly correction.
    pub weekly: bool,
    /// The sampling interval when known (a rule's slide); estimated otherwise.
    pub interval: Option<Millis>,
    /// Observations the surprise calibration remembers.
    pub calibration_memory: f64,
    /// Smallest scale a deviation is measured in (e.g. the Poisson noise of a
    /// sparse count), in the series' unit.
    pub min_scale: f64,
}

impl Default for DetectorParams {
    fn default() -> Self {
        DetectorParams {
            direction: Direction::Both,
            warmup: 32,
            level_memory: 32.0,
            accept_after: 12,
            daily: true,
            weekly: true,
            interval: None,
            calibration_memory: 500.0,
            min_scale: 0.0,
        }
    }
}

/// The judgement of one observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Anomaly score in [0, 1): 0 within the noise, 0.5 at
    /// [`HALF_SCORE_SURPRISE`] nats.
    pub score: f64,
    /// The score of the episode this observation belongs to: the largest
    /// score since the current run of same-side outliers began (what a rule
    /// pages on, so an incident that goes on stays as anomalous as it began).
    pub episode: f64,
    /// Surprise in nats (negative log tail probability), direction applied.
    pub surprise: f64,
    /// What the baseline expected.
    pub expected: f64,
    /// Its scale: the believed model's mean absolute error.
    pub scale: f64,
    /// Whether the value is where the series has never been (see [`Novelty`]).
    pub novel: bool,
}

impl Verdict {
    /// The normal band: (lower, upper) within [`BAND_SCALES`] scales of the
    /// expected value, where about 95% of normal observations fall. Paging
    /// takes a deviation far rarer than leaving it (see [`Verdict::score`]).
    pub fn band(&self) -> (f64, f64) {
        let half = BAND_SCALES * self.scale;
        (self.expected - half, self.expected + half)
    }
}

/// Score of a surprise: monotone, 0 at 0, 1/2 at [`HALF_SCORE_SURPRISE`].
pub fn score_of(surprise: f64) -> f64 {
    surprise / (surprise + HALF_SCORE_SURPRISE)
}

/// Whether a value on `ground`, `z` scales from what was expected and with
/// `calibrated` surprise from the residual test, is new ground: outside the
/// normal band, and far from anything visited or at the edge of the known
/// range and surprising there too.
fn is_new_ground(ground: Ground, calibrated: f64, z: f64) -> bool {
    let outside = z.abs() >= BAND_SCALES;
    match ground {
        Ground::Known => false,
        Ground::Edge => outside && calibrated >= EPISODE_NATS,
        Ground::New => outside,
    }
}

/// Negative log two-sided tail probability of a standard normal beyond `z`
/// (the asymptotic form; 0 where it would be negative).
fn gaussian_nats(z: f64) -> f64 {
    if z <= 1.0 {
        return 0.0;
    }
    (0.5 * z * z + z.ln() + 0.5 * (std::f64::consts::PI / 2.0).ln()).max(0.0)
}

/// `e` clipped at [`CLIP`] times `err` (unclipped while `err` is unknown).
fn clip(e: f64, err: f64) -> f64 {
    clip_at(e, err, CLIP)
}

/// `e` clipped at `scales` times `err` (unclipped while `err` is unknown).
fn clip_at(e: f64, err: f64, scales: f64) -> f64 {
    if err > 0.0 {
        e.clamp(-scales * err, scales * err)
    } else {
        e
    }
}

/// Inverse of [`score_of`].
pub fn surprise_at(score: f64) -> f64 {
    let s = score.clamp(0.0, 0.999_999);
    HALF_SCORE_SURPRISE * s / (1.0 - s)
}

/// The four predictors, in [`DetectorState::errors`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    Fast,
    Slow,
    Daily,
    Weekly,
}

const MODELS: [Model; 4] = [Model::Fast, Model::Slow, Model::Daily, Model::Weekly];

/// Everything a detector has learned about one series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectorState {
    /// Observations seen.
    seen: u64,
    /// Time of the latest observation.
    last_t: Millis,
    /// Value of the latest observation.
    last_x: f64,
    /// Sampling interval estimate.
    cadence: Cadence,
    /// Smallest non-zero step seen between consecutive values.
    quantum: f64,
    /// Fast level.
    fast: f64,
    /// Slow level.
    slow: f64,
    /// Recent deviation from the daily profile.
    daily_offset: f64,
    /// Recent deviation from the daily profile and its weekly correction.
    weekly_offset: f64,
    /// Unclipped short average of the values: where a shift is accepted to.
    recent: f64,
    /// Mean absolute error per model.
    errors: [f64; 4],
    /// Mean absolute error per model over [`CHOICE_MEMORY`]: what the model
    /// believed is chosen by (0 in a snapshot older than it: `errors` stands
    /// in, see [`DetectorState::choice_error`]).
    #[serde(default)]
    choice: [f64; 4],
    /// Predictions made per model (saturating).
    predicted: [u32; 4],
    /// Short average of the believed model's residuals.
    short: f64,
    /// Its mean absolute value.
    short_error: f64,
    /// Consecutive outliers, signed by side.
    run: i32,
    /// Short average of clipped absolute residuals in scales.
    volatility: f64,
    /// Worst surprise of the current episode (0: none).
    episode: f64,
    daily: Option<Profile>,
    weekly: Option<Profile>,
    /// How often each raw surprise has occurred.
    tail: Tail,
    /// The values visited.
    #[serde(default)]
    novelty: Novelty,
}

impl DetectorState {
    fn choice_error(&self, m: Model) -> f64 {
        let i = m as usize;
        if self.choice[i] > 0.0 {
            self.choice[i]
        } else {
            self.errors[i]
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.cadence.heap_bytes()
            + self.tail.heap_bytes()
            + self.novelty.heap_bytes()
            + self.daily.as_ref().map_or(0, Profile::heap_bytes)
            + self.weekly.as_ref().map_or(0, Profile::heap_bytes)
    }
}

/// A detector: its parameters; the state it learns lives in [`DetectorState`]
/// (one per series) so a rule keeps one detector for all its groups.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Detector {
    /// Its parameters.
    pub params: DetectorParams,
}

/// Each model's forecast for one observation (NaN: none yet).
struct Forecasts {
    values: [f64; 4],
    /// What the profiles alone give for this slot (daily, and with the weekly
    /// correction), without the offsets that follow the recent level; NaN:
    /// not learned.
    typical: [f64; 2],
    daily_slot: Option<usize>,
    weekly_slot: Option<usize>,
}

impl Detector {
    /// A detector with `params`.
    pub fn new(params: DetectorParams) -> Detector {
        Detector { params }
    }

    /// Scores `x` observed at `t`, then learns it. Observations must come in
    /// time order; a non-finite `x` is ignored (scored 0).
    pub fn observe(&self, st: &mut DetectorState, t: Millis, x: f64) -> Verdict {
        self.observe_with_noise(st, t, x, |_| 0.0)
    }

    /// [`Detector::observe`] with a sampling-noise floor on the scale: `noise`
    /// gives, for the expected value, the deviation sampling alone would
    /// cause (e.g. binomial for an error rate over few requests), so a sparse
    /// night's noise is not an anomaly however quiet the day was.
    pub fn observe_with_noise(
        &self,
        st: &mut DetectorState,
        t: Millis,
        x: f64,
        noise: impl Fn(f64) -> f64,
    ) -> Verdict {
        if !x.is_finite() {
            return self.quiet(st);
        }
        if st.seen == 0 {
            self.start(st, t, x);
            return self.quiet(st);
        }
        self.track_cadence(st, t, x);
        let f = self.forecast(st, t);
        let believed = self.believed(st, &f, &noise);
        let expected = f.values[believed as usize];
        let sampling = noise(expected);
        let scale = self.scale(st, believed, expected).max(sampling);
        let residual = x - expected;
        let usual = self.usual_for_the_hour(st, &f, x, &noise);
        let ground = self.ground(st, x, residual, usual, sampling);
        let verdict = self.judge(st, residual, expected, scale, usual, ground);
        self.learn(st, &f, x, scale);
        self.accept_shift(st, &f, residual / scale);
        let span = if self.params.daily { DAY } else { 0 };
        st.novelty.learn(t, x, verdict.novel, span);
        st.seen += 1;
        st.last_t = t;
        st.last_x = x;
        verdict
    }

    /// Scores `x` at `t` against what has been learned, learning nothing: a
    /// look at a partial observation between the ones [`Detector::observe`]
    /// learns from (a window not yet complete). Judges it as `observe` would,
    /// with the calibration and the episode so far.
    pub fn peek(
        &self,
        st: &DetectorState,
        t: Millis,
        x: f64,
        noise: impl Fn(f64) -> f64,
    ) -> Verdict {
        if !x.is_finite() || st.seen < u64::from(self.params.warmup).max(2) {
            return self.quiet(st);
        }
        let f = self.forecast(st, t);
        let believed = self.believed(st, &f, &noise);
        let expected = f.values[believed as usize];
        let sampling = noise(expected);
        let scale = self.scale(st, believed, expected).max(sampling);
        // As if it were learned: the point and the sustained statistics (a
        // window between learnings must not lose the evidence of the last ones).
        let (raw, _, _) = self.surprises(st, x - expected, scale);
        let usual = self.usual_for_the_hour(st, &f, x, &noise);
        let z = (x - expected) / scale;
        let ground = self.ground(st, x, x - expected, usual, sampling);
        let surprise = if usual { 0.0 } else { st.tail.calibrate(raw) };
        let novel = is_new_ground(ground, surprise, z);
        let surprise = if novel {
            surprise.max(NOVEL_SURPRISE)
        } else {
            surprise
        };
        // The episode goes on only while this value itself is surprising (its
        // point test, not the averages that still carry the last learning's
        // evidence): a window that is normal again ends it, so a 40 s blip,
        // learned once, does not hold its score for minutes.
        let point = if novel {
            NOVEL_SURPRISE
        } else if self.params.direction.admits(z) && !usual {
            st.tail.calibrate(z.abs())
        } else {
            0.0
        };
        let episode = if point >= EPISODE_NATS {
            surprise.max(st.episode)
        } else {
            surprise
        };
        Verdict {
            score: score_of(surprise),
            episode: score_of(episode),
            surprise,
            expected,
            scale,
            novel,
        }
    }

    fn quiet(&self, st: &DetectorState) -> Verdict {
        Verdict {
            score: 0.0,
            episode: 0.0,
            surprise: 0.0,
            expected: st.fast,
            scale: st.errors[0],
            novel: false,
        }
    }

    fn start(&self, st: &mut DetectorState, t: Millis, x: f64) {
        *st = DetectorState {
            seen: 1,
            last_t: t,
            last_x: x,
            fast: x,
            slow: x,
            recent: x,
            ..DetectorState::default()
        };
    }

    fn track_cadence(&self, st: &mut DetectorState, t: Millis, x: f64) {
        let step = (x - st.last_x).abs();
        if step > 0.0 && (st.quantum == 0.0 || step < st.quantum) {
            st.quantum = step;
        }
        if self.params.interval.is_none() {
            st.cadence.record(t - st.last_t);
        }
        if st.daily.is_none() && st.weekly.is_none() {
            self.make_profiles(st);
        }
    }

    fn interval(&self, st: &DetectorState) -> Option<Millis> {
        self.params.interval.or_else(|| {
            st.cadence
                .settled()
                .then(|| st.cadence.interval())
                .flatten()
        })
    }

    /// Creates the profiles once the interval is known, if it is short enough
    /// for them to have a shape (a dozen samples a day, four a week-day).
    fn make_profiles(&self, st: &mut DetectorState) {
        let Some(interval) = self.interval(st) else {
            return;
        };
        if self.params.daily && interval * 12 <= DAY {
            st.daily = Some(Profile::new(DAY, interval, DAILY_SLOTS));
            if self.params.weekly && interval * 28 <= WEEK {
                st.weekly = Some(Profile::new(WEEK, interval.max(HOUR), WEEKLY_SLOTS));
            }
        }
    }

    fn forecast(&self, st: &DetectorState, t: Millis) -> Forecasts {
        let mut values = [st.fast, st.slow, f64::NAN, f64::NAN];
        let mut typicals = [f64::NAN; 2];
        let daily_slot = st.daily.as_ref().map(|p| p.slot(t));
        let weekly_slot = st.weekly.as_ref().map(|p| p.slot(t));
        if let Some(typical) = st
            .daily
            .as_ref()
            .zip(daily_slot)
            .and_then(|(p, s)| p.offset(s))
        {
            values[2] = typical + st.daily_offset;
            typicals[0] = typical;
            if let (Some(w), Some(ws)) = (&st.weekly, weekly_slot) {
                let weekly = w.offset(ws).unwrap_or(0.0);
                values[3] = typical + weekly + st.weekly_offset;
                typicals[1] = typical + weekly;
            }
        }
        Forecasts {
            values,
            typical: typicals,
            daily_slot,
            weekly_slot,
        }
    }

    /// The model with the smallest error among those that may be believed: a
    /// profile once it has covered its period and predicted for a while, and
    /// only where it has learned this slot.
    ///
    /// Errors below the sampling noise are not real skill: they count as the
    /// noise, and among equals the steadier model wins. On a sparse rate
    /// (mostly zeros) the fast level's absolute error is smallest because it
    /// sits near zero after each zero, and it would then follow an incident
    /// within a few observations.
    fn believed(&self, st: &DetectorState, f: &Forecasts, noise: &impl Fn(f64) -> f64) -> Model {
        // A mean absolute error is ~0.8 of the noise's deviation for a
        // perfect forecast: up to 1.25 deviations there is no skill to tell.
        let skill = |m: Model| {
            st.choice_error(m)
                .max(NOISE_SKILL * noise(f.values[m as usize]))
        };
        let mut best = Model::Fast;
        for m in MODELS {
            if !f.values[m as usize].is_nan() && self.ready(st, m) && skill(m) <= skill(best) {
                best = m;
            }
        }
        best
    }

    fn ready(&self, st: &DetectorState, m: Model) -> bool {
        let profile = match m {
            Model::Fast | Model::Slow => None,
            Model::Daily => st.daily.as_ref(),
            Model::Weekly => st.weekly.as_ref(),
        };
        let covered = match (m, profile) {
            (Model::Fast | Model::Slow, _) => true,
            (_, Some(p)) => p.coverage() >= 0.9,
            (_, None) => false,
        };
        covered && st.predicted[m as usize] >= self.model_warmup(st, profile)
    }

    /// Predictions a model needs before it is believed: [`MODEL_WARMUP`], and
    /// for a profile a quarter of its period (so its error has seen a rhythm).
    fn model_warmup(&self, st: &DetectorState, profile: Option<&Profile>) -> u32 {
        let period = match (profile, self.interval(st)) {
            (Some(p), Some(i)) => (p.period() / i.max(1) / 4) as u32,
            _ => 0,
        };
        MODEL_WARMUP.max(period)
    }

    fn scale(&self, st: &DetectorState, m: Model, expected: f64) -> f64 {
        // f32 profiles and repeated values must not make a zero scale.
        let resolution = (st.quantum * 0.5).max(expected.abs() * 1e-6);
        st.errors[m as usize]
            .max(self.params.min_scale)
            .max(resolution)
            .max(f64::MIN_POSITIVE)
    }

    /// Whether `x` is within [`USUAL_SCALES`] of a ready profile's scales of
    /// what the profile holds for this slot (without the offsets that follow
    /// the recent level): usual for this hour, whatever the recent level says. After a benign excursion (an
    /// hour-long marketing spike) the levels and offsets have followed it, and
    /// the return to normal must not read as a drop.
    fn usual_for_the_hour(
        &self,
        st: &DetectorState,
        f: &Forecasts,
        x: f64,
        noise: &impl Fn(f64) -> f64,
    ) -> bool {
        [(Model::Daily, f.typical[0]), (Model::Weekly, f.typical[1])]
            .into_iter()
            .any(|(m, typical)| {
                !typical.is_nan()
                    && self.ready(st, m)
                    && (x - typical).abs()
                        <= USUAL_SCALES * self.scale(st, m, typical).max(noise(typical))
            })
    }

    fn judge(
        &self,
        st: &mut DetectorState,
        residual: f64,
        expected: f64,
        scale: f64,
        usual: bool,
        ground: Ground,
    ) -> Verdict {
        let raw = self.raw_surprise(st, residual, scale);
        let raw = if usual { 0.0 } else { raw };
        let calibrated = st.tail.calibrate(raw);
        st.tail.record(raw, self.params.calibration_memory);
        let novel = is_new_ground(ground, calibrated, residual / scale);
        let surprise = if st.seen < u64::from(self.params.warmup) {
            0.0
        } else if novel {
            calibrated.max(NOVEL_SURPRISE)
        } else {
            calibrated
        };
        // Consecutive surprising observations are one episode: it stays as
        // anomalous as its worst moment (the calibration soon learns an
        // incident's level; the episode does not), and only an observation
        // that makes it worse is news.
        let worst_before = st.episode;
        st.episode = if surprise >= EPISODE_NATS {
            st.episode.max(surprise)
        } else {
            0.0
        };
        let news = if surprise > worst_before {
            surprise
        } else {
            0.0
        };
        Verdict {
            score: score_of(news),
            episode: score_of(st.episode),
            surprise,
            expected,
            scale,
            novel,
        }
    }

    /// The ground under `x` (see [`Novelty`]) where it may count: on the
    /// configured side of what was expected, not usual for the hour, and past
    /// the warm-up; [`Ground::Known`] elsewhere. `x` is first taken back
    /// towards the expected value by one `noise` deviation: a value is new
    /// ground only if it would be without the part sampling alone explains.
    /// A p99 of a few hundred requests moves by several percent from one
    /// window to the next, and its step just past the highest seen is not
    /// news (a series without sampling noise is judged as it is).
    fn ground(&self, st: &DetectorState, x: f64, residual: f64, usual: bool, noise: f64) -> Ground {
        if usual
            || st.seen < u64::from(self.params.warmup)
            || !self.params.direction.admits(residual)
        {
            return Ground::Known;
        }
        st.novelty
            .ground(x - residual.signum() * noise.min(residual.abs()))
    }

    /// The largest of three uncalibrated surprises (nats), direction applied:
    /// this residual alone (Laplace), the short average of residuals (a
    /// small shift that persists) and, for `both`, the short average of
    /// absolute residuals (noise that grows).
    fn raw_surprise(&self, st: &mut DetectorState, residual: f64, scale: f64) -> f64 {
        let (raw, short, volatility) = self.surprises(st, residual, scale);
        st.short = short;
        st.volatility = volatility;
        raw
    }

    /// [`Detector::raw_surprise`] without learning: the surprise and the
    /// short averages as they would be after `residual`.
    fn surprises(&self, st: &DetectorState, residual: f64, scale: f64) -> (f64, f64, f64) {
        let z = residual / scale;
        let direction = self.params.direction;
        // The averages take clipped residuals: one spike is the point test's
        // to judge, not a shift.
        let short =
            st.short + SHORT_WEIGHT * (residual.clamp(-CLIP * scale, CLIP * scale) - st.short);
        let volatility = st.volatility + VOLATILITY_WEIGHT * (z.abs().min(CLIP) - st.volatility);
        let point = if direction.admits(z) { z.abs() } else { 0.0 };
        let sustained = if direction.admits(short) {
            gaussian_nats(short.abs() / self.short_sd(st, scale))
        } else {
            0.0
        };
        let volatile = if direction == Direction::Both {
            // |z| of Laplace residuals has mean and spread 1.
            let spread = (VOLATILITY_WEIGHT / (2.0 - VOLATILITY_WEIGHT)).sqrt();
            gaussian_nats((volatility - 1.0) / spread)
        } else {
            0.0
        };
        (point.max(sustained).max(volatile), short, volatility)
    }

    /// Spread of the short average: what independent Laplace residuals of
    /// `scale` give it, or more where residuals are correlated (learned).
    fn short_sd(&self, st: &DetectorState, scale: f64) -> f64 {
        let independent = scale * (2.0 * SHORT_WEIGHT / (2.0 - SHORT_WEIGHT)).sqrt();
        independent.max(st.short_error * std::f64::consts::FRAC_PI_2.sqrt())
    }

    fn learn(&self, st: &mut DetectorState, f: &Forecasts, x: f64, scale: f64) {
        for m in MODELS {
            let i = m as usize;
            let v = f.values[i];
            if v.is_nan() {
                continue;
            }
            let e = (x - v).abs();
            let n = st.predicted[i];
            if n == 0 {
                st.errors[i] = e;
                st.choice[i] = e;
            } else {
                let capped = if st.errors[i] > 0.0 {
                    e.min(CLIP * st.errors[i])
                } else {
                    e
                };
                let w = 1.0 / (f64::from(n) + 1.0).min(ERROR_MEMORY);
                st.errors[i] += w * (capped - st.errors[i]);
                if st.choice[i] == 0.0 {
                    // A snapshot from before the choice errors: start from the errors.
                    st.choice[i] = st.errors[i];
                }
                let w = 1.0 / (f64::from(n) + 1.0).min(CHOICE_MEMORY);
                st.choice[i] += w * (capped - st.choice[i]);
            }
            st.predicted[i] = n.saturating_add(1);
        }
        let short_capped = st.short.abs().min(CLIP * self.short_sd(st, scale));
        st.short_error += (short_capped - st.short_error) / ERROR_MEMORY;
        self.learn_levels(st, f, x);
    }

    fn learn_levels(&self, st: &mut DetectorState, f: &Forecasts, x: f64) {
        let slow_w = 2.0 / (self.params.level_memory + 1.0);
        st.fast += FAST_WEIGHT * clip(x - st.fast, st.errors[0]);
        st.slow += slow_w * clip(x - st.slow, st.errors[1]);
        st.recent += 0.5 * (x - st.recent);
        self.learn_profiles(st, f, x);
    }

    /// The daily profile learns each slot's typical value, the weekly one each
    /// hour-of-week's typical deviation from it; offsets follow how far the
    /// series is from them now. All from values clipped around the forecast.
    fn learn_profiles(&self, st: &mut DetectorState, f: &Forecasts, x: f64) {
        let interval = self.interval(st).unwrap_or(1);
        let slow_w = 2.0 / (self.params.level_memory + 1.0);
        let offset_clip = if self.ready(st, Model::Weekly) {
            OFFSET_CLIP
        } else {
            CLIP
        };
        let Some((p, s)) = st.daily.as_mut().zip(f.daily_slot) else {
            return;
        };
        let typical = p.offset(s);
        // What the profile holds is the usual: an outlier (beyond the clip)
        // teaches it nothing, or an hour-long spike would raise the next
        // slots and the return to normal would look like a drop.
        if typical.is_some() && (x - f.values[2]).abs() > CLIP * st.errors[2] && st.errors[2] > 0.0
        {
            return;
        }
        let clipped = match typical {
            Some(_) => f.values[2] + clip(x - f.values[2], st.errors[2]),
            None => x,
        };
        let memory = p.memory(interval);
        p.learn(s, clipped, memory);
        let Some(typical) = typical else {
            return;
        };
        let step = |e: f64, err: f64| clip_at(e, err, offset_clip);
        st.daily_offset += slow_w * step(clipped - typical - st.daily_offset, st.errors[2]);
        if let (Some(w), Some(ws)) = (st.weekly.as_mut(), f.weekly_slot) {
            let usual = w.offset(ws);
            let clipped = match usual {
                Some(_) => f.values[3] + clip(x - f.values[3], st.errors[3]),
                None => x,
            };
            let memory = w.memory(interval);
            w.learn(ws, clipped - typical, memory);
            if let Some(u) = usual {
                st.weekly_offset +=
                    slow_w * step(clipped - typical - u - st.weekly_offset, st.errors[3]);
            }
        }
    }

    /// Counts outliers on one side; after `accept_after` of them the levels
    /// jump to where the series now is.
    fn accept_shift(&self, st: &mut DetectorState, f: &Forecasts, z: f64) {
        if z.abs() < CLIP {
            st.run = 0;
            return;
        }
        let side = if z > 0.0 { 1 } else { -1 };
        st.run = if st.run.signum() == side {
            st.run + side
        } else {
            side
        };
        if st.run.unsigned_abs() >= self.params.accept_after.max(1) {
            st.fast = st.recent;
            st.slow = st.recent;
            if !f.values[2].is_nan() {
                st.daily_offset += st.recent - f.values[2];
            }
            if !f.values[3].is_nan() {
                st.weekly_offset += st.recent - f.values[3];
            }
            st.short = 0.0;
            st.run = 0;
        }
    }
}

#[cfg(test)]
mod tests;
