use proptest::prelude::*;

use super::*;

const LATENESS: Millis = 20_000;
const STEP: Millis = 10_000;
const DEF: TimerDef = TimerDef {
    at_risk: 0.8,
    max_entities: 100_000,
    allowance: None,
};

#[derive(Debug, Clone)]
struct Gen {
    open: Millis,
    allowance: Millis,
    close: Option<Millis>,
}

fn gen() -> impl Strategy<Value = Gen> {
    (
        0i64..600_000,
        1_000i64..120_000,
        prop::option::of(0i64..200_000),
    )
        .prop_map(|(open, allowance, took)| Gen {
            open,
            allowance,
            close: took.map(|t| open + t),
        })
}

proptest! {
    /// For random out-of-order open/close streams within the lateness, at every
    /// evaluation the overdue count is exactly the entities opened, past their
    /// deadline, and not closed by then; at risk likewise for 80% of the allowance.
    #[test]
    fn timers_fire_exactly_for_entities_unclosed_at_the_deadline(
        entities in prop::collection::vec(gen(), 1..120),
        jitter in prop::collection::vec(0i64..LATENESS, 240),
    ) {
        // (arrival key, ts, entity, is_open)
        let mut events: Vec<(Millis, Millis, usize, bool)> = Vec::new();
        for (i, g) in entities.iter().enumerate() {
            events.push((g.open + jitter[2 * i % 240], g.open, i, true));
            if let Some(c) = g.close {
                events.push((c + jitter[(2 * i + 1) % 240], c, i, false));
            }
        }
        events.sort();
        let mut table = Entities::default();
        let mut stats = EntityStats::default();
        let (mut max_ts, mut next_eval) = (Millis::MIN, STEP);
        let mut applied_open = vec![false; entities.len()];
        let mut applied_close: Vec<Option<Millis>> = vec![None; entities.len()];
        let check = |at: Millis, table: &mut Entities, stats: &mut EntityStats,
                         opened: &[bool], closed: &[Option<Millis>]| -> Result<(), TestCaseError> {
            table.advance(at, stats);
            let live = |i: usize| opened[i] && closed[i].is_none_or(|c| c > at);
            let overdue = (0..entities.len())
                .filter(|&i| live(i) && entities[i].open + entities[i].allowance <= at)
                .count();
            let at_risk = (0..entities.len())
                .filter(|&i| {
                    let g = &entities[i];
                    let risk = g.open + (g.allowance as f64 * 0.8) as Millis;
                    live(i) && risk <= at && g.open + g.allowance > at && risk < g.open + g.allowance
                })
                .count();
            prop_assert_eq!(table.read(Measure::Overdue).0, Some(overdue as f64), "overdue at {}", at);
            prop_assert_eq!(table.read(Measure::AtRisk).0, Some(at_risk as f64), "at risk at {}", at);
            Ok(())
        };
        for (_, ts, i, is_open) in events {
            let watermark = max_ts.max(ts) - LATENESS;
            while next_eval <= watermark {
                check(next_eval, &mut table, &mut stats, &applied_open, &applied_close)?;
                next_eval += STEP;
            }
            if max_ts != Millis::MIN && ts < max_ts - LATENESS {
                continue; // late: the engine refuses it
            }
            max_ts = max_ts.max(ts);
            let id = i as u64;
            if is_open {
                let early = applied_close[i].is_some();
                table.open(&DEF, id, ts, Some(ts + entities[i].allowance), &mut stats);
                // A close that came first completes the entity at once.
                applied_open[i] = !early;
            } else {
                table.close(id, ts, &mut stats);
                applied_close[i] = Some(ts);
            }
        }
        while next_eval <= max_ts {
            check(next_eval, &mut table, &mut stats, &applied_open, &applied_close)?;
            next_eval += STEP;
        }
        // Every applied open and close is accounted for.
        let opens = applied_open.iter().filter(|o| **o).count() as u64 + stats.early_closes;
        prop_assert_eq!(stats.opened, opens);
    }
}

#[test]
fn odd_streams_have_defined_outcomes() {
    let mut t = Entities::default();
    let mut s = EntityStats::default();
    t.open(&DEF, 1, 0, Some(60_000), &mut s);
    t.open(&DEF, 1, 1_000, Some(60_000), &mut s);
    assert_eq!(s.duplicate_opens, 1, "a second open is a duplicate");
    t.close(2, 5_000, &mut s);
    t.open(&DEF, 2, 4_000, Some(60_000), &mut s);
    assert_eq!(
        (s.early_closes, s.closed),
        (1, 1),
        "close before open completes it"
    );
    t.close(3, 5_000, &mut s);
    t.advance(10_000, &mut s);
    assert_eq!(s.unknown_closes, 1, "a close nobody opens");
    t.open(&DEF, 4, 0, None, &mut s);
    assert_eq!(s.without_deadline, 1);
    let one = TimerDef {
        max_entities: 1,
        ..DEF
    };
    t.open(&one, 5, 0, Some(1), &mut s);
    assert_eq!(s.refused, 1, "the cap refuses");
    t.advance(60_000, &mut s);
    assert_eq!(t.read(Measure::Overdue).0, Some(1.0));
    t.close(1, 70_000, &mut s);
    t.advance(70_000, &mut s);
    assert_eq!((s.closed, s.closed_late), (2, 1));
    t.open(&DEF, 6, 100_000, Some(110_000), &mut s);
    t.advance(110_000 + FORGET_AFTER, &mut s);
    assert_eq!(s.expired, 1, "forgotten a day after its deadline");
    assert!(t.is_empty());
}
