use super::*;
use std::io::Write;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mp-log-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn key(i: u32) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..4].copy_from_slice(&i.to_be_bytes());
    k
}

fn body(i: u32, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

#[test]
fn committed_records_survive_a_restart_and_uncommitted_ones_do_not() {
    let d = dir("restart");
    let (mut log, problems) = Log::open(&d).unwrap();
    assert!(problems.is_empty());
    log.put(Table::Envelope, key(1), b"one").unwrap();
    log.put(Table::Inbox, key(1), b"inbox one").unwrap();
    log.put(Table::Envelope, key(2), b"two").unwrap();
    // Readable before the commit too (a file part checked in the same turn).
    assert_eq!(log.get(Table::Envelope, &key(2)).unwrap().unwrap(), b"two");
    log.commit().unwrap();
    log.del(Table::Envelope, key(1));
    log.put(Table::Envelope, key(2), b"two, again").unwrap();
    log.commit().unwrap();
    assert_eq!(log.stats().commits, 2);
    log.put(Table::Envelope, key(3), b"never committed").unwrap();
    drop(log);
    let (log, problems) = Log::open(&d).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(log.keys(Table::Envelope), vec![key(2)]);
    assert_eq!(log.get(Table::Envelope, &key(2)).unwrap().unwrap(), b"two, again");
    assert_eq!(log.get(Table::Inbox, &key(1)).unwrap().unwrap(), b"inbox one");
    assert_eq!(log.get(Table::Envelope, &key(1)).unwrap(), None);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn a_failed_commit_takes_every_buffered_write_back() {
    let d = dir("failed");
    let (mut log, _) = Log::open(&d).unwrap();
    log.put(Table::Envelope, key(1), b"kept").unwrap();
    log.commit().unwrap();
    log.put(Table::Envelope, key(2), b"lost").unwrap();
    log.put(Table::Envelope, key(1), b"replaced?").unwrap();
    log.del(Table::Envelope, key(1));
    // A head that cannot be written (as on a full or read-only disk; a
    // directory in its place, since root ignores file modes).
    let head = seg_path(&d, log.head);
    fs::rename(&head, d.join("aside")).unwrap();
    fs::create_dir(&head).unwrap();
    assert!(log.commit().is_err());
    assert_eq!(log.stats().failed_commits, 1);
    assert_eq!(log.keys(Table::Envelope), vec![key(1)]);
    assert_eq!(log.sizes().1, (HEADER + 4) as u64, "live bytes counted back too");
    fs::remove_dir(&head).unwrap();
    fs::rename(d.join("aside"), &head).unwrap();
    assert_eq!(log.get(Table::Envelope, &key(1)).unwrap().unwrap(), b"kept");
    log.put(Table::Envelope, key(3), b"after").unwrap();
    log.commit().unwrap();
    drop(log);
    let (log, problems) = Log::open(&d).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(log.keys(Table::Envelope), vec![key(1), key(3)]);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn an_unfinished_write_at_the_head_is_cut_off_and_damage_elsewhere_is_kept_aside() {
    let d = dir("torn");
    let (mut log, _) = Log::open_with(&d, 4096).unwrap();
    for i in 0..40 {
        log.put(Table::Envelope, key(i), &body(i, 300)).unwrap();
        log.commit().unwrap();
    }
    let head = log.head;
    assert!(head >= 3, "several segments ({head})");
    drop(log);
    // Power lost in the middle of a write: half a record at the head's end.
    let mut rec = Vec::new();
    record::encode(&mut rec, Table::Envelope, &key(99), Some(&body(99, 300))).unwrap();
    for cut in [5, HEADER + 10, rec.len() - 1] {
        let mut f = OpenOptions::new().append(true).open(seg_path(&d, head)).unwrap();
        f.write_all(&rec[..cut]).unwrap();
        drop(f);
        let (mut log, problems) = Log::open_with(&d, 4096).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("never finished"), "{problems:?}");
        assert_eq!(log.count(Table::Envelope), 40, "everything committed is there");
        assert!(!log.contains(Table::Envelope, &key(99)));
        // New records after the cut are found at the next start.
        log.put(Table::Inbox, key(cut as u32), b"x").unwrap();
        log.commit().unwrap();
    }
    let (log, problems) = Log::open_with(&d, 4096).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(log.count(Table::Inbox), 3);
    drop(log);
    // A flipped bit in an older segment: the records before it stay, the
    // segment is copied aside, nothing is deleted.
    let p = seg_path(&d, 1);
    let mut bytes = fs::read(&p).unwrap();
    let at = MAGIC.len() + 2 * (HEADER + 300) + 40;
    bytes[at] ^= 1;
    fs::write(&p, &bytes).unwrap();
    let (log, problems) = Log::open_with(&d, 4096).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("does not match"), "{problems:?}");
    assert!(p.with_extension("seg.bad").exists());
    assert!(log.contains(Table::Envelope, &key(1)) && !log.contains(Table::Envelope, &key(2)));
    assert!(log.contains(Table::Envelope, &key(39)), "later segments are whole");
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn compaction_keeps_the_log_within_twice_its_live_bytes_and_loses_nothing() {
    let d = dir("compact");
    let seg = 8192u64;
    let (mut log, _) = Log::open_with(&d, seg).unwrap();
    let mut live = BTreeMap::new();
    // A store that churns: 5,000 envelopes come and go, about 50 held at
    // a time, a few long-lived inbox entries, and delivered ids, half of
    // them expired by the end.
    for i in 0..5000u32 {
        let b = body(i, 100 + (i as usize % 400));
        log.put(Table::Envelope, key(i), &b).unwrap();
        live.insert((Table::Envelope, key(i)), b);
        if i >= 50 {
            log.del(Table::Envelope, key(i - 50));
            live.remove(&(Table::Envelope, key(i - 50)));
        }
        if i % 500 == 0 {
            let b = body(i, 1000);
            log.put(Table::Inbox, key(i), &b).unwrap();
            live.insert((Table::Inbox, key(i)), b);
            let expires = if i % 1000 == 0 { 10 } else { 1_000_000 };
            let p = record::delivered_payload(expires, &[1; 16]);
            log.put(Table::Delivered, key(i), &p).unwrap();
            if expires > 100 {
                live.insert((Table::Delivered, key(i)), p.to_vec());
            }
        }
        log.commit().unwrap();
        while log.maintain(100).unwrap() {}
        let (total, l) = log.sizes();
        assert!(total <= 2 * l + 2 * seg + 4096, "log {total} bytes for {l} live at {i}");
    }
    assert!(log.segments() <= 12, "{} segments", log.segments());
    let s = log.stats();
    assert!(s.segments_removed > 50, "{s:?}");
    let files = fs::read_dir(&d).unwrap().count();
    assert_eq!(files, log.segments(), "no file left behind");
    drop(log);
    let (log, problems) = Log::open_with(&d, seg).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let mut found = BTreeMap::new();
    for t in [Table::Envelope, Table::Inbox, Table::Delivered] {
        for k in log.keys(t) {
            found.insert((t, k), log.get(t, &k).unwrap().unwrap());
        }
    }
    // Expired delivered ids are dropped once their segment is compacted
    // (those in the newest segments may still be there).
    let expired_left = found.keys().filter(|k| !live.contains_key(k)).count();
    found.retain(|k, _| live.contains_key(k));
    assert_eq!(found, live);
    assert!(expired_left <= 2, "{expired_left} expired delivered ids kept");
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn compacting_a_segment_cut_short_behind_the_daemons_back_neither_panics_nor_deletes_it() {
    let d = dir("cutshort");
    let (mut log, _) = Log::open_with(&d, 4096).unwrap();
    for i in 0..30 {
        log.put(Table::Inbox, key(i), &body(i, 300)).unwrap();
        log.commit().unwrap();
    }
    for i in 0..30 {
        log.del(Table::Inbox, key(i));
        log.put(Table::Envelope, key(100 + i), &body(i, 300)).unwrap();
        log.del(Table::Envelope, key(100 + i));
        log.commit().unwrap();
    }
    log.put(Table::Inbox, key(0), b"live in the oldest? no: the newest").unwrap();
    log.commit().unwrap();
    // Give the oldest segment a live record again, then cut its file short.
    let oldest = *log.segs.keys().next().unwrap();
    log.set((Table::Delivered, key(7)), Some(Loc { seg: oldest, off: 16, len: 29 }));
    fs::OpenOptions::new().write(true).open(seg_path(&d, oldest)).unwrap().set_len(10).unwrap();
    assert!(!log.maintain(0).unwrap_or(false));
    assert!(seg_path(&d, oldest).exists(), "a segment with live records is kept");
    let _ = fs::remove_dir_all(&d);
}
