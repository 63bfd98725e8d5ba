-- Deleting a generation (farm_generation_delete) reads the storage
-- deletions listed for it: by index, not by a scan of every pending
-- deletion (with a storage outage or a retention backlog, there are
-- many). Upload deletions carry no generation_id: left out.
CREATE INDEX storage_deletions_by_generation ON storage_deletions (generation_id)
    WHERE generation_id IS NOT NULL;
