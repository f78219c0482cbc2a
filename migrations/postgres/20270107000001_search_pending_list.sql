-- The search index's pending list (GIN's fastupdate) kept small. New entries wait in that list
-- until it is merged into the index, and every search reads the whole list, since it is not
-- sorted: at the default 4 MB, thousands of messages sent a second each made every search scan
-- their entries again. A list of 256 kB is merged more often, in smaller steps.
ALTER INDEX messages_search SET (gin_pending_list_limit = 256);
