DO $$
BEGIN
    EXECUTE pg_catalog.format('ALTER DATABASE %I RESET search_path', pg_catalog.current_database());
END;
$$;
DROP SCHEMA ops CASCADE;
