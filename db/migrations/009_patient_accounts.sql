-- Accounts bound to one patient (a patient portal's users, or a carer limited to one record): their
-- tokens carry the SMART `patient` claim and patient/ scopes, and reach only that compartment.
ALTER TABLE auth_user ADD COLUMN patient text;
