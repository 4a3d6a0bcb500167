-- Release 2.0.0 pins notes. Expand only: the column has a default, so release 1.0.0, which does
-- not know it, keeps inserting rows while the fleet moves to 2.0.0.
ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
