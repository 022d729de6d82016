-- Roles stay (they are cluster-wide); this database's grants go.
ALTER DEFAULT PRIVILEGES IN SCHEMA ops REVOKE USAGE ON SEQUENCES FROM opsguard_operator;
ALTER DEFAULT PRIVILEGES IN SCHEMA ops REVOKE SELECT, INSERT, UPDATE ON TABLES FROM opsguard_operator;
ALTER DEFAULT PRIVILEGES IN SCHEMA ops REVOKE EXECUTE ON FUNCTIONS FROM opsguard_operator;
REVOKE ALL ON ALL TABLES IN SCHEMA ops FROM opsguard_api, opsguard_operator, opsguard_auditor;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA ops FROM opsguard_operator;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ops FROM opsguard_api, opsguard_operator;
REVOKE ALL ON SCHEMA ops FROM opsguard_api, opsguard_operator, opsguard_auditor;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ops TO public;
