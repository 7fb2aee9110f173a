//! The state log's records and segments: decoding arbitrary bytes never
//! panics, what decodes encodes back to a record that decodes the same
//! (an envelope under its own id in the short form), and opening a
//! segment of arbitrary contents (torn, damaged, hostile) never panics and
//! leaves a log that can be read and written.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost::persist::record::{self, Table};
use meshpost::persist::segments::{Log, MAGIC};

fuzz_target!(|data: &[u8]| {
    let mut off = 0;
    while let Ok((r, used)) = record::decode(&data[off..]) {
        let mut again = Vec::new();
        let n = record::encode(&mut again, r.table, &r.key, r.payload).unwrap();
        assert_eq!(record::decode(&again), Ok((r, n)));
        off += used;
    }
    let dir = std::env::temp_dir().join(format!("mp-fuzz-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut seg = MAGIC.to_vec();
    seg.extend_from_slice(data);
    std::fs::write(dir.join("00000001.seg"), &seg).unwrap();
    let (mut log, _) = Log::open(&dir).unwrap();
    for t in [Table::Envelope, Table::Inbox, Table::Delivered] {
        for k in log.keys(t) {
            assert!(log.get(t, &k).unwrap().is_some());
        }
    }
    log.put(Table::Envelope, [1; 16], b"after").unwrap();
    log.commit().unwrap();
    drop(log);
    let (log, problems) = Log::open(&dir).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(log.get(Table::Envelope, &[1; 16]).unwrap().as_deref(), Some(&b"after"[..]));
});
