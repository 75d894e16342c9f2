//! Fetch on the owner core: where each part's records are (cached bytes, or a range of a segment
//! file for the connection's core to read), with the offsets and the partition's wake-up event.

use super::Shard;
use super::messages::{FetchPart, FetchPartResult};
use crate::codes::ErrorCode;

impl Shard {
    /// Locates the records of `parts`; one result per part, in order. With `listen`, each result
    /// carries a listener on its partition's data event, registered before the read.
    pub(super) fn locate(&self, parts: Vec<FetchPart>, listen: bool) -> Vec<FetchPartResult> {
        parts
            .into_iter()
            .map(|part| {
                let log = match self.led_log(&part.tp) {
                    Ok(log) => log,
                    Err(code) => return FetchPartResult::failed(code),
                };
                if let Err(e) = log.check_leader_epoch(part.current_leader_epoch) {
                    return FetchPartResult::failed(ErrorCode::from(&e));
                }
                let wake = listen.then(|| log.data_event().listen());
                let mut aborted = None;
                let located = match part.replica {
                    Some(_) => log.locate_for_replica(part.offset, part.max_bytes),
                    // Up to the last stable offset; the zero-copy read is the same.
                    None if part.read_committed => log.locate_committed(part.offset, part.max_bytes).map(|(found, list)| {
                        aborted = Some(list);
                        found
                    }),
                    None => log.locate(part.offset, part.max_bytes),
                };
                if let (Some(replica), Ok(_)) = (part.replica, &located) {
                    // A valid fetch (within this log): the follower has everything below its
                    // fetch offset on disk. A refused one says nothing about its log.
                    self.on_replica_fetch(&part.tp, replica, part.offset, &log);
                }
                match located {
                    Ok(r) => FetchPartResult {
                        error_code: ErrorCode::NONE,
                        high_watermark: r.high_watermark,
                        log_start_offset: r.log_start_offset,
                        last_stable_offset: r.last_stable_offset,
                        aborted,
                        records: r.records,
                        wake,
                    },
                    Err(e) => {
                        let offsets = log.offsets();
                        FetchPartResult {
                            error_code: ErrorCode::from(&e),
                            high_watermark: offsets.high_watermark,
                            log_start_offset: offsets.log_start,
                            last_stable_offset: log.last_stable_offset(),
                            wake,
                            ..Default::default()
                        }
                    }
                }
            })
            .collect()
    }
}
