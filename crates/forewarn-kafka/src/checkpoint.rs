//! Checkpoints: a partition's engine state and the next input offset, written
//! to a compacted topic and read back when the partition is assigned.
//!
//! One checkpoint is a *generation* of one or more chunks (the state may be far
//! larger than a broker's message limit). Generations alternate between two
//! slots: chunk `i` of generation `g` has the key `PREFIX#s.i` with `s = g % 2`,
//! so compaction keeps the latest of each, and a writer that dies half-way
//! through a generation leaves the previous one, in the other slot, intact.
//! Each chunk's headers name the format version, the generation, `i/n`, the
//! next input offset and a checksum of the whole state. A reader keeps the
//! newest generation whose chunks are all present and whose checksum holds;
//! anything else is refused, and the partition is then reprocessed from its
//! committed offset (nothing is lost, the state starts empty).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use forewarn_core::{Snapshot, SnapshotV4};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// The checkpoint format this build writes and reads.
pub const VERSION: u32 = 1;

/// Largest chunk payload: below Kafka's default 1 MB message limit.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// Header names.
pub mod header {
    /// Checkpoint format version.
    pub const VERSION: &str = "forewarn-checkpoint-version";
    /// Generation (increases with every checkpoint of the partition).
    pub const GENERATION: &str = "forewarn-checkpoint-generation";
    /// `i/n`: this chunk's index and the generation's chunk count.
    pub const CHUNK: &str = "forewarn-checkpoint-chunk";
    /// The next input offset the state covers.
    pub const OFFSET: &str = "forewarn-checkpoint-offset";
    /// FNV-1a 64 of the whole serialised state, hex.
    pub const CHECKSUM: &str = "forewarn-checkpoint-checksum";
}

/// The key prefix of one partition's checkpoints.
pub fn key_prefix(group: &str, topic: &str, partition: i32) -> String {
    format!("{group}/{topic}/{partition}")
}

/// The checkpoint-topic partition that holds input partition `partition`'s
/// checkpoints, among `partitions`: a restore then reads that partition only,
/// not the whole topic (as Kafka Streams co-partitions its changelogs).
pub fn home_partition(partition: i32, partitions: i32) -> i32 {
    partition.rem_euclid(partitions.max(1))
}

/// One message of a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// `PREFIX#slot.i`.
    pub key: String,
    /// Part of the serialised state.
    pub payload: Vec<u8>,
    /// Version, generation, `i/n`, offset, checksum.
    pub headers: Vec<(&'static str, String)>,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Splits `snapshot` (covering input up to `next_offset`) into chunks of at
/// most `chunk_bytes`.
pub fn encode(
    prefix: &str,
    snapshot: &Snapshot,
    next_offset: i64,
    generation: u64,
    chunk_bytes: usize,
) -> Vec<Chunk> {
    // postcard: compact and fast (JSON was 3x the size and ~5x the time).
    let state = postcard::to_stdvec(snapshot).expect("snapshots serialize");
    chunked(prefix, &state, next_offset, generation, chunk_bytes)
}

/// Splits serialised state into chunks with their headers.
fn chunked(
    prefix: &str,
    state: &[u8],
    next_offset: i64,
    generation: u64,
    chunk_bytes: usize,
) -> Vec<Chunk> {
    let checksum = format!("{:016x}", fnv1a(state));
    let parts: Vec<&[u8]> = if state.is_empty() {
        vec![&[]]
    } else {
        state.chunks(chunk_bytes.max(1)).collect()
    };
    let n = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| Chunk {
            key: format!("{prefix}#{}.{i}", generation % 2),
            payload: part.to_vec(),
            headers: vec![
                (header::VERSION, VERSION.to_string()),
                (header::GENERATION, generation.to_string()),
                (header::CHUNK, format!("{i}/{n}")),
                (header::OFFSET, next_offset.to_string()),
                (header::CHECKSUM, checksum.clone()),
            ],
        })
        .collect()
}

/// A restored checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    /// The engine state.
    pub snapshot: Snapshot,
    /// The next input offset it covers.
    pub next_offset: i64,
    /// Its generation (the next checkpoint writes a higher one).
    pub generation: u64,
    /// Bytes of state read.
    pub bytes: usize,
}

/// Why a checkpoint was not restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Chunks were found but no generation is complete and intact.
    #[error("checkpoint is partial or corrupt: {0}")]
    Corrupt(String),
    /// Written by another format version.
    #[error("checkpoint format version {0} is not supported (this build reads {VERSION})")]
    Version(String),
    /// The checkpoint topic could not be read.
    #[error("checkpoint topic unreadable: {0}")]
    Unreadable(String),
}

/// One chunk as read.
#[derive(Debug)]
struct Seen {
    generation: u64,
    count: usize,
    offset: i64,
    checksum: String,
    payload: Vec<u8>,
}

#[derive(Debug, Default)]
struct Generation {
    count: usize,
    offset: i64,
    checksum: String,
    chunks: BTreeMap<usize, Vec<u8>>,
}

/// Collects the chunks of one partition's checkpoints, in the order they were
/// written, and picks the newest complete, intact generation.
#[derive(Debug, Default)]
pub struct Assembler {
    /// Latest chunk seen per (slot, index): generation, chunk count, offset,
    /// checksum, payload.
    latest: BTreeMap<(u64, usize), Seen>,
    seen: usize,
    bad: Vec<String>,
}

impl Assembler {
    /// Takes one chunk (later ones replace earlier ones of the same key, as
    /// compaction would).
    pub fn add(&mut self, headers: &[(String, String)], payload: &[u8]) {
        self.seen += 1;
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if let Some(v) = get(header::VERSION).filter(|v| *v != VERSION.to_string()) {
            self.bad.push(format!("version {v}"));
            return;
        }
        let parsed = (|| {
            let generation: u64 = get(header::GENERATION)?.parse().ok()?;
            let (i, n) = get(header::CHUNK)?.split_once('/')?;
            let (i, n): (usize, usize) = (i.parse().ok()?, n.parse().ok()?);
            let offset: i64 = get(header::OFFSET)?.parse().ok()?;
            let checksum = get(header::CHECKSUM)?.to_string();
            (i < n).then_some((i, generation, n, offset, checksum))
        })();
        match parsed {
            Some((i, generation, n, offset, checksum)) => {
                let seen = Seen {
                    generation,
                    count: n,
                    offset,
                    checksum,
                    payload: payload.to_vec(),
                };
                self.latest.insert((generation % 2, i), seen);
            }
            None => self.bad.push("unreadable chunk headers".into()),
        }
    }

    /// Whether no chunk of this partition was seen.
    pub fn is_empty(&self) -> bool {
        self.seen == 0
    }

    /// The newest complete, intact generation; `Ok(None)` when there is none
    /// at all (no checkpoint yet).
    pub fn finish(self) -> Result<Option<Restored>, CheckpointError> {
        if self.seen == 0 {
            return Ok(None);
        }
        let mut generations: BTreeMap<u64, Generation> = BTreeMap::new();
        for ((_, i), seen) in self.latest {
            let g = generations.entry(seen.generation).or_default();
            g.count = seen.count;
            g.offset = seen.offset;
            g.checksum = seen.checksum;
            g.chunks.insert(i, seen.payload);
        }
        let mut why = self.bad;
        for (generation, g) in generations.into_iter().rev() {
            if g.chunks.len() != g.count || g.chunks.keys().copied().ne(0..g.count) {
                why.push(format!(
                    "generation {generation}: {} of {} chunks",
                    g.chunks.len(),
                    g.count
                ));
                continue;
            }
            let state: Vec<u8> = g.chunks.into_values().flatten().collect();
            if format!("{:016x}", fnv1a(&state)) != g.checksum {
                why.push(format!("generation {generation}: checksum mismatch"));
                continue;
            }
            // The snapshot's version leads its bytes; postcard is not
            // self-describing, so version 4 (before per-service event time)
            // must be read as such, or it would decode as garbage.
            let decoded = match postcard::take_from_bytes::<u32>(&state) {
                Ok((4, _)) => postcard::from_bytes::<SnapshotV4>(&state).map(Snapshot::from),
                _ => postcard::from_bytes::<Snapshot>(&state),
            };
            match decoded {
                Ok(snapshot) => {
                    return Ok(Some(Restored {
                        snapshot,
                        next_offset: g.offset,
                        generation,
                        bytes: state.len(),
                    }))
                }
                Err(e) => why.push(format!("generation {generation}: {e}")),
            }
        }
        if why.iter().all(|w| w.starts_with("version")) && !why.is_empty() {
            return Err(CheckpointError::Version(why.join(", ")));
        }
        Err(CheckpointError::Corrupt(why.join("; ")))
    }
}

/// Reads the checkpoints of the `wanted` partitions (their key prefix and
/// input partition) from `topic`, in `wanted` order. Each partition's
/// checkpoints live in its home partition ([`home_partition`]), so only the
/// homes are read; a partition found in none of them (written by a version
/// that let the key's hash place chunks, or before the topic's partition
/// count changed) is looked for in the rest of the topic.
pub fn read(
    config: &ClientConfig,
    topic: &str,
    wanted: &[(String, i32)],
    timeout: Duration,
) -> Result<Vec<Result<Option<Restored>, CheckpointError>>, CheckpointError> {
    let deadline = Instant::now() + timeout;
    let reader: BaseConsumer = config
        .clone()
        .set("group.id", "forewarn-checkpoint-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .map_err(|e| CheckpointError::Unreadable(e.to_string()))?;
    let unreadable = |e: rdkafka::error::KafkaError| CheckpointError::Unreadable(e.to_string());
    let md = reader
        .fetch_metadata(Some(topic), timeout)
        .map_err(unreadable)?;
    let partitions: BTreeSet<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(CheckpointError::Unreadable(format!(
            "topic {topic} does not exist or has no partitions"
        )));
    }
    let count = partitions.len() as i32;
    let homes: BTreeSet<i32> = wanted
        .iter()
        .map(|(_, p)| home_partition(*p, count))
        .filter(|h| partitions.contains(h))
        .collect();
    let mut scan = Scan {
        reader: &reader,
        topic,
        prefixes: wanted.iter().map(|(p, _)| p.as_str()).collect(),
        assemblers: wanted.iter().map(|_| Assembler::default()).collect(),
        deadline,
        timeout,
    };
    let everyone = vec![true; wanted.len()];
    scan.partitions(&homes, &everyone)?;
    let missing: Vec<bool> = scan.assemblers.iter().map(Assembler::is_empty).collect();
    if missing.contains(&true) {
        let rest: BTreeSet<i32> = partitions.difference(&homes).copied().collect();
        scan.partitions(&rest, &missing)?;
    }
    Ok(scan.assemblers.into_iter().map(Assembler::finish).collect())
}

/// One read of the checkpoint topic: a reader and the assemblers it feeds.
struct Scan<'a> {
    reader: &'a BaseConsumer,
    topic: &'a str,
    prefixes: Vec<&'a str>,
    assemblers: Vec<Assembler>,
    deadline: Instant,
    timeout: Duration,
}

impl Scan<'_> {
    /// Reads `partitions` from their beginning to where they end now, feeding
    /// the assemblers that `feed` selects.
    fn partitions(
        &mut self,
        partitions: &BTreeSet<i32>,
        feed: &[bool],
    ) -> Result<(), CheckpointError> {
        let unreadable = |e: rdkafka::error::KafkaError| CheckpointError::Unreadable(e.to_string());
        // Where each partition ends now: the scan stops there.
        let mut ends = BTreeMap::new();
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            let left = self.deadline.saturating_duration_since(Instant::now());
            let (low, high) = self
                .reader
                .fetch_watermarks(self.topic, p, left)
                .map_err(unreadable)?;
            if high > low {
                ends.insert(p, high);
                tpl.add_partition_offset(self.topic, p, Offset::Beginning)
                    .map_err(unreadable)?;
            }
        }
        if ends.is_empty() {
            return Ok(());
        }
        self.reader.assign(&tpl).map_err(unreadable)?;
        while !ends.is_empty() {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CheckpointError::Unreadable(format!(
                    "not read to its end within {:?}",
                    self.timeout
                )));
            }
            let Some(m) = self.reader.poll(left.min(Duration::from_millis(100))) else {
                continue;
            };
            let m = m.map_err(unreadable)?;
            take(&m, &self.prefixes, feed, &mut self.assemblers);
            if ends
                .get(&m.partition())
                .is_some_and(|end| m.offset() + 1 >= *end)
            {
                ends.remove(&m.partition());
            }
        }
        // A broker may report the end as the last batch's base offset + 1 (Tansu
        // does): the rest of that batch is fetched already; take it too.
        while let Some(Ok(m)) = self.reader.poll(Duration::ZERO) {
            take(&m, &self.prefixes, feed, &mut self.assemblers);
        }
        Ok(())
    }
}

/// Feeds `m` to the assembler of its partition's prefix, if it is one of ours
/// and `feed` selects it.
fn take<M: Message>(m: &M, prefixes: &[&str], feed: &[bool], assemblers: &mut [Assembler]) {
    let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
        return;
    };
    let Some(at) = key
        .rsplit_once('#')
        .and_then(|(p, _)| prefixes.iter().position(|x| *x == p))
        .filter(|&at| feed[at])
    else {
        return;
    };
    let headers: Vec<(String, String)> = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    let value = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                    (h.key.to_string(), value.unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    assemblers[at].add(&headers, m.payload().unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let cfg = forewarn_core::Config::parse(
            "[[signals]]\nname = \"n\"\naggregate = \"count\"\nwindow = \"1m\"\nslide = \"10s\"\n[[rules]]\nname = \"R\"\nkind = \"threshold\"\nsignal = \"n\"\nwarning = { value = 1e9 }\n",
            "t.toml",
        )
        .unwrap();
        let mut e = forewarn_core::Engine::new(cfg);
        let ev = forewarn_core::decode(br#"{"ts":1700000000000,"service":"pay"}"#).unwrap();
        e.ingest(&ev, 1_700_000_000_000, &mut Vec::new());
        e.snapshot()
    }

    fn owned(headers: &[(&'static str, String)]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn feed(a: &mut Assembler, chunks: &[Chunk]) {
        for c in chunks {
            a.add(&owned(&c.headers), &c.payload);
        }
    }

    #[test]
    fn a_checkpoint_in_many_chunks_reassembles() {
        let s = snapshot();
        let chunks = encode("g/t/0", &s, 42, 7, 100);
        assert!(chunks.len() > 3, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.payload.len() <= 100));
        let mut a = Assembler::default();
        feed(&mut a, &chunks);
        let r = a.finish().unwrap().unwrap();
        assert_eq!((r.snapshot, r.next_offset, r.generation), (s, 42, 7));
    }

    #[test]
    fn a_checkpoint_written_before_per_service_event_time_restores() {
        let s = snapshot();
        let v4 = postcard::to_stdvec(&SnapshotV4::of(s.clone())).unwrap();
        let mut a = Assembler::default();
        feed(&mut a, &chunked("g/t/0", &v4, 42, 7, 100));
        let r = a.finish().unwrap().unwrap();
        let want = Snapshot::from(SnapshotV4::of(s));
        assert_eq!((r.snapshot, r.next_offset), (want, 42));
    }

    #[test]
    fn a_torn_newer_generation_falls_back_to_the_previous_one() {
        let s = snapshot();
        let mut a = Assembler::default();
        feed(&mut a, &encode("p", &s, 10, 1, 100));
        // The next generation's first chunks landed, then the writer died: its
        // slot is the other one, so generation 1 is untouched.
        let newer = encode("p", &s, 20, 2, 100);
        feed(&mut a, &newer[..2]);
        let r = a.finish().unwrap().unwrap();
        assert_eq!((r.next_offset, r.generation), (10, 1));
        // Generation 3 reuses generation 1's slot; complete, it wins.
        let mut a = Assembler::default();
        feed(&mut a, &encode("p", &s, 10, 1, 100));
        feed(&mut a, &newer[..2]);
        feed(&mut a, &encode("p", &s, 30, 3, 100));
        let r = a.finish().unwrap().unwrap();
        assert_eq!((r.next_offset, r.generation), (30, 3));
    }

    #[test]
    fn corrupt_or_foreign_checkpoints_are_refused_and_none_is_no_checkpoint() {
        assert_eq!(Assembler::default().finish(), Ok(None));
        let s = snapshot();
        let mut chunks = encode("p", &s, 10, 1, usize::MAX);
        chunks[0].payload[5] ^= 0x20;
        let mut a = Assembler::default();
        feed(&mut a, &chunks);
        assert!(matches!(a.finish(), Err(CheckpointError::Corrupt(m)) if m.contains("checksum")));
        let mut chunks = encode("p", &s, 10, 1, usize::MAX);
        chunks[0].headers[0].1 = "99".into();
        let mut a = Assembler::default();
        feed(&mut a, &chunks);
        assert!(matches!(a.finish(), Err(CheckpointError::Version(_))));
    }
}
