//! The records of `__consumer_offsets`, in Kafka's key and value schemas:
//!
//! ```text
//! key v1  OffsetCommitKey    group:string topic:string partition:int32
//! key v2  GroupMetadataKey   group:string
//! value v3 OffsetCommitValue offset:int64 leaderEpoch:int32 metadata:string commitTimestamp:int64
//! value v3 GroupMetadataValue protocolType:string generation:int32 protocol:string? leader:string?
//!          currentStateTimestamp:int64 members:[memberId clientInstanceId? clientId clientHost
//!          rebalanceTimeout:int32 sessionTimeout:int32 subscription:bytes assignment:bytes]
//! ```
//! A null value is a tombstone. Strings are int16-length-prefixed; bytes int32-length-prefixed.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A decoded `__consumer_offsets` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupKey {
    /// A committed offset of one partition.
    Offset {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// A group's metadata.
    Metadata {
        /// Group id.
        group: String,
    },
}

impl GroupKey {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            GroupKey::Offset { group, .. } | GroupKey::Metadata { group } => group,
        }
    }
}

/// A committed offset, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The next offset to consume.
    pub offset: i64,
    /// Leader epoch of that record, or -1.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When it was committed (ms).
    pub commit_timestamp: i64,
}

/// One member in a stored group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout (ms).
    pub rebalance_timeout_ms: i32,
    /// Session timeout (ms).
    pub session_timeout_ms: i32,
    /// The member's metadata for the chosen protocol.
    pub subscription: Bytes,
    /// Its assignment.
    pub assignment: Bytes,
}

/// A group's metadata, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    /// Protocol type ("consumer").
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// Chosen protocol (assignor).
    pub protocol: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// When the state last changed (ms).
    pub state_timestamp: i64,
    /// Members.
    pub members: Vec<StoredMember>,
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_opt_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

fn get_opt_str(buf: &mut &[u8]) -> Option<Option<String>> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = buf.get_i16();
    if len < 0 {
        return Some(None);
    }
    let len = len as usize;
    if buf.remaining() < len {
        return None;
    }
    let s = String::from_utf8(buf[..len].to_vec()).ok()?;
    buf.advance(len);
    Some(Some(s))
}

fn get_str(buf: &mut &[u8]) -> Option<String> {
    get_opt_str(buf)?
}

fn get_bytes(buf: &mut &[u8]) -> Option<Bytes> {
    if buf.remaining() < 4 {
        return None;
    }
    let len = buf.get_i32().max(0) as usize;
    if buf.remaining() < len {
        return None;
    }
    let v = Bytes::copy_from_slice(&buf[..len]);
    buf.advance(len);
    Some(v)
}

fn get_i64(buf: &mut &[u8]) -> Option<i64> {
    (buf.remaining() >= 8).then(|| buf.get_i64())
}

fn get_i32(buf: &mut &[u8]) -> Option<i32> {
    (buf.remaining() >= 4).then(|| buf.get_i32())
}

impl GroupKey {
    /// Encodes the key.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            GroupKey::Offset { group, topic, partition } => {
                b.put_i16(1);
                put_str(&mut b, group);
                put_str(&mut b, topic);
                b.put_i32(*partition);
            }
            GroupKey::Metadata { group } => {
                b.put_i16(2);
                put_str(&mut b, group);
            }
        }
        b.freeze()
    }

    /// Decodes a key; `None` for unknown versions (transaction markers, newer records).
    pub fn decode(mut buf: &[u8]) -> Option<GroupKey> {
        if buf.remaining() < 2 {
            return None;
        }
        match buf.get_i16() {
            0 | 1 => Some(GroupKey::Offset {
                group: get_str(&mut buf)?,
                topic: get_str(&mut buf)?,
                partition: get_i32(&mut buf)?,
            }),
            2 => Some(GroupKey::Metadata { group: get_str(&mut buf)? }),
            _ => None,
        }
    }
}

impl OffsetValue {
    /// Encodes as value version 3.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(3);
        b.put_i64(self.offset);
        b.put_i32(self.leader_epoch);
        put_str(&mut b, &self.metadata);
        b.put_i64(self.commit_timestamp);
        b.freeze()
    }

    /// Decodes value versions 1 and 3.
    pub fn decode(mut buf: &[u8]) -> Option<OffsetValue> {
        if buf.remaining() < 2 {
            return None;
        }
        let version = buf.get_i16();
        let offset = get_i64(&mut buf)?;
        let leader_epoch = if version >= 3 { get_i32(&mut buf)? } else { -1 };
        let metadata = get_str(&mut buf)?;
        let commit_timestamp = get_i64(&mut buf)?;
        Some(OffsetValue { offset, leader_epoch, metadata, commit_timestamp })
    }
}

impl GroupValue {
    /// Encodes as value version 3.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(3);
        put_str(&mut b, &self.protocol_type);
        b.put_i32(self.generation);
        put_opt_str(&mut b, self.protocol.as_deref());
        put_opt_str(&mut b, self.leader.as_deref());
        b.put_i64(self.state_timestamp);
        b.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_str(&mut b, &m.member_id);
            put_opt_str(&mut b, m.instance_id.as_deref());
            put_str(&mut b, &m.client_id);
            put_str(&mut b, &m.client_host);
            b.put_i32(m.rebalance_timeout_ms);
            b.put_i32(m.session_timeout_ms);
            put_bytes(&mut b, &m.subscription);
            put_bytes(&mut b, &m.assignment);
        }
        b.freeze()
    }

    /// Decodes value version 3.
    pub fn decode(mut buf: &[u8]) -> Option<GroupValue> {
        if buf.remaining() < 2 || buf.get_i16() != 3 {
            return None;
        }
        let protocol_type = get_str(&mut buf)?;
        let generation = get_i32(&mut buf)?;
        let protocol = get_opt_str(&mut buf)?;
        let leader = get_opt_str(&mut buf)?;
        let state_timestamp = get_i64(&mut buf)?;
        let n = get_i32(&mut buf)?.max(0) as usize;
        let mut members = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            members.push(StoredMember {
                member_id: get_str(&mut buf)?,
                instance_id: get_opt_str(&mut buf)?,
                client_id: get_str(&mut buf)?,
                client_host: get_str(&mut buf)?,
                rebalance_timeout_ms: get_i32(&mut buf)?,
                session_timeout_ms: get_i32(&mut buf)?,
                subscription: get_bytes(&mut buf)?,
                assignment: get_bytes(&mut buf)?,
            });
        }
        Some(GroupValue { protocol_type, generation, protocol, leader, state_timestamp, members })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let k = GroupKey::Offset { group: "g".into(), topic: "t".into(), partition: 3 };
        assert_eq!(GroupKey::decode(&k.encode()), Some(k));
        let k = GroupKey::Metadata { group: "g".into() };
        assert_eq!(GroupKey::decode(&k.encode()), Some(k));
        let v = OffsetValue { offset: 42, leader_epoch: 0, metadata: "meta".into(), commit_timestamp: 9 };
        assert_eq!(OffsetValue::decode(&v.encode()), Some(v));
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            state_timestamp: 1,
            members: vec![StoredMember {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300000,
                session_timeout_ms: 45000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(GroupValue::decode(&g.encode()), Some(g));
        assert_eq!(GroupKey::decode(&[0, 9, 0]), None);
    }
}
