/**
 * The settings schema: every key Uplink reads, its type, default, meaning and an example.
 * `config/load.ts` merges the JSON file named by UPLINK_CONFIG over these defaults and validates the result;
 * `npm run config:doc` (config/doc.ts) prints this table as Markdown for the README.
 */

export type Service = 'echo' | 'store' | 'find';

export interface NodeConfig {
  name: string;
  aeTitle: string;
  host: string;
  port: number;
  allow: Service[];
  /** May the appliance C-STORE to this node (forwarding, DICOM transfer)? */
  send: boolean;
  /** Intake policy applied to C-STOREs received from this node. */
  policy: string;
}

export interface PolicyConfig {
  anonymise: boolean;
  label: string | null;
  workflowStatus: string | null;
  scan: boolean;
  forwardTo: string[];
}

export interface InstitutionConfig {
  id: string;
  name: string;
  phone: string;
  email: string;
  manualUrl: string;
  privacyPolicyUrl: string;
}

export interface Config {
  dataDir: string;
  log: { level: 'debug' | 'info' | 'warn' | 'error' };
  http: { host: string; port: number; publicUrl: string; secureCookies: boolean; trustProxy: boolean };
  dicom: {
    host: string;
    port: number;
    aeTitle: string;
    pacs: string | null;
    maxAssociations: number;
    maxPduBytes: number;
    associationTimeoutSeconds: number;
    idleTimeoutSeconds: number;
    maxDatasetBytes: number;
    findLimit: number;
    nodes: NodeConfig[];
  };
  anonymise: { issuer: string };
  policies: Record<string, PolicyConfig>;
  scan: {
    clamd: { host: string; port: number; manage: boolean; timeoutSeconds: number; maxConcurrent: number; startTimeoutSeconds: number };
    databaseDir: string | null;
  };
  upload: {
    maxFileBytes: number;
    defaultAllowanceBytes: number;
    defaultCodeDays: number;
    maxFilesPerUpload: number;
    chunkBytes: number;
    parallelFiles: number;
    unfinishedDays: number;
  };
  institutions: InstitutionConfig[];
  forward: {
    retryInitialSeconds: number;
    retryMaxSeconds: number;
    giveUpAfterHours: number;
    maxInstancesPerAssociation: number;
    maxBytesPerAssociation: number;
    concurrentDestinations: number;
    associationsPerDestination: number;
  };
  session: { idleMinutes: number; absoluteHours: number };
  console: {
    loginAttemptsPerAddress: number;
    loginAttemptsPerUser: number;
    loginAttemptWindowMinutes: number;
    passwordMinLength: number;
    pageSize: number;
    workflowStatuses: string[];
  };
  portal: {
    defaultLanguage: 'en' | 'nl';
    codeAttemptsPerAddress: number;
    codeAttemptsGlobal: number;
    codeAttemptWindowMinutes: number;
    zipMaxEntries: number;
    zipMaxBytes: number;
    zipMaxRatio: number;
  };
}

/** One documented key. `path` is dotted; arrays of objects describe their items with `items`. */
export interface KeyDoc {
  path: string;
  doc: string;
  example: string;
}

const GiB = 1024 ** 3;

export const defaults: Config = {
  dataDir: './data',
  log: { level: 'info' },
  http: { host: '127.0.0.1', port: 8080, publicUrl: 'http://127.0.0.1:8080', secureCookies: false, trustProxy: false },
  dicom: {
    host: '127.0.0.1',
    port: 11112,
    aeTitle: 'UPLINK',
    pacs: null,
    maxAssociations: 16,
    maxPduBytes: 262144,
    associationTimeoutSeconds: 30,
    idleTimeoutSeconds: 120,
    maxDatasetBytes: 4 * GiB,
    findLimit: 1000,
    nodes: [],
  },
  anonymise: { issuer: 'UPLINK' },
  policies: {
    modality: { anonymise: false, label: null, workflowStatus: null, scan: false, forwardTo: [] },
    upload: { anonymise: true, label: 'Uploaded', workflowStatus: 'Finalized', scan: true, forwardTo: [] },
  },
  scan: {
    clamd: { host: '127.0.0.1', port: 3310, manage: true, timeoutSeconds: 300, maxConcurrent: 4, startTimeoutSeconds: 180 },
    databaseDir: null,
  },
  upload: {
    maxFileBytes: 2 * 1000 ** 3, // under clamd's largest scannable file (2 GiB - 1)
    defaultAllowanceBytes: 10 * 1000 ** 3,
    defaultCodeDays: 14,
    maxFilesPerUpload: 20000,
    chunkBytes: 2 * 1024 * 1024,
    parallelFiles: 4,
    unfinishedDays: 7,
  },
  institutions: [
    {
      id: 'default',
      name: 'Uplink Hospital',
      phone: '+1 555 0100',
      email: 'imaging@hospital.example',
      manualUrl: '/manual',
      privacyPolicyUrl: '/privacy',
    },
  ],
  forward: {
    retryInitialSeconds: 30,
    retryMaxSeconds: 600,
    giveUpAfterHours: 168,
    maxInstancesPerAssociation: 1000,
    maxBytesPerAssociation: 4 * GiB,
    concurrentDestinations: 4,
    associationsPerDestination: 2,
  },
  session: { idleMinutes: 30, absoluteHours: 12 },
  console: {
    loginAttemptsPerAddress: 20,
    loginAttemptsPerUser: 5,
    loginAttemptWindowMinutes: 15,
    passwordMinLength: 12,
    pageSize: 25,
    workflowStatuses: ['Received', 'In review', 'Finalized'],
  },
  portal: {
    defaultLanguage: 'en',
    codeAttemptsPerAddress: 10,
    codeAttemptsGlobal: 1000,
    codeAttemptWindowMinutes: 15,
    zipMaxEntries: 20000,
    zipMaxBytes: 4 * GiB,
    zipMaxRatio: 200,
  },
};

/** Documentation of every key, in the order the README lists them. */
export const keyDocs: KeyDoc[] = [
  { path: 'dataDir', doc: 'Folder holding the SQLite index, the file store, staging, held and quarantined files. Relative paths are relative to the working directory.', example: '"/var/lib/uplink"' },
  { path: 'log.level', doc: 'Lowest level written to the log (stdout, JSON lines): debug, info, warn or error.', example: '"debug"' },
  { path: 'http.host', doc: 'Address the web portal and console listen on.', example: '"0.0.0.0"' },
  { path: 'http.port', doc: 'TCP port of the web portal and console.', example: '443' },
  { path: 'http.publicUrl', doc: 'Address patients type to reach the portal; printed on upload-code handouts.', example: '"https://upload.hospital.example"' },
  { path: 'http.secureCookies', doc: 'Mark cookies Secure (set when a TLS reverse proxy fronts Uplink).', example: 'true' },
  { path: 'http.trustProxy', doc: 'Take the client address from X-Forwarded-For (set only when a reverse proxy you control fronts Uplink); it is what wrong upload codes are rate-limited by.', example: 'true' },
  { path: 'dicom.host', doc: 'Address the DICOM node listens on (the listener is bound to it only).', example: '"10.1.2.3"' },
  { path: 'dicom.port', doc: 'TCP port of the DICOM node.', example: '104' },
  { path: 'dicom.aeTitle', doc: 'Our AE title; calls to any other called AE title are rejected. 1-16 characters, no backslash.', example: '"UPLINK"' },
  { path: 'dicom.pacs', doc: 'Name of the node (in dicom.nodes, with send: true) that is the hospital PACS: uploads are forwarded to it and patient searches go to it. null: none.', example: '"PACS"' },
  { path: 'dicom.maxAssociations', doc: 'Concurrent incoming associations; more are rejected (transient, local limit exceeded).', example: '32' },
  { path: 'dicom.maxPduBytes', doc: 'Largest PDU we accept (announced as our maximum length); a bigger PDU aborts the association.', example: '1048576' },
  { path: 'dicom.associationTimeoutSeconds', doc: 'Time a new connection has to complete association negotiation.', example: '30' },
  { path: 'dicom.idleTimeoutSeconds', doc: 'An association with no PDU for this long is aborted.', example: '300' },
  { path: 'dicom.maxDatasetBytes', doc: 'Cap on one received dataset; a larger C-STORE is refused with 0xA700.', example: '8589934592' },
  { path: 'dicom.findLimit', doc: 'Most C-FIND matches returned for one query; the rest are cut off (logged).', example: '500' },
  { path: 'dicom.nodes', doc: 'Remote DICOM nodes. A call is accepted only from a node whose AE title and address match, and only for the services in its allow list.', example: '[{"name":"CT1","aeTitle":"CT1","host":"10.1.2.50","port":104,"allow":["echo","store"]}]' },
  { path: 'dicom.nodes[].name', doc: 'Unique name used in the console, the CLI and policies.', example: '"PACS"' },
  { path: 'dicom.nodes[].aeTitle', doc: 'The node\'s AE title (calling AE when it calls us, called AE when we call it).', example: '"ORTHANC"' },
  { path: 'dicom.nodes[].host', doc: 'The node\'s IP address (its calls must come from it) or host name (to call it).', example: '"10.1.2.60"' },
  { path: 'dicom.nodes[].port', doc: 'The node\'s DICOM port (to call it).', example: '4242' },
  { path: 'dicom.nodes[].allow', doc: 'Services the node may use on us: any of "echo", "store", "find". Default: ["echo"].', example: '["echo","store","find"]' },
  { path: 'dicom.nodes[].send', doc: 'Whether we may send (C-STORE) studies to this node. Default false.', example: 'true' },
  { path: 'dicom.nodes[].policy', doc: 'Intake policy (a key of policies) for C-STOREs from this node. Default "modality".', example: '"upload"' },
  { path: 'anonymise.issuer', doc: 'Issuer of Patient ID written into anonymised studies.', example: '"UPLINK-HOSPITAL"' },
  { path: 'policies', doc: 'Intake policies by name. "modality" (changes nothing) and "upload" (anonymise, label Uploaded, status Finalized, scan) are built in and may be overridden; more may be added.', example: '{"partner":{"anonymise":true,"label":"Partner","workflowStatus":null,"scan":true,"forwardTo":["PACS"]}}' },
  { path: 'policies.<name>.anonymise', doc: 'Replace Patient ID and Accession Number with pseudonyms (originals kept in the index only).', example: 'true' },
  { path: 'policies.<name>.label', doc: 'Label stamped on studies (null: none).', example: '"Uploaded"' },
  { path: 'policies.<name>.workflowStatus', doc: 'Workflow status given to new studies (null: none).', example: '"Finalized"' },
  { path: 'policies.<name>.scan', doc: 'Scan each file with clamd before it is stored.', example: 'true' },
  { path: 'policies.<name>.forwardTo', doc: 'Node names to forward stored instances to automatically. The upload policy also forwards to dicom.pacs.', example: '["PACS"]' },
  { path: 'scan.clamd.host', doc: 'Address of clamd (TCP).', example: '"127.0.0.1"' },
  { path: 'scan.clamd.port', doc: 'TCP port of clamd.', example: '3310' },
  { path: 'scan.clamd.manage', doc: 'Start and stop our own clamd (config written under dataDir/clamd) instead of using a running one.', example: 'false' },
  { path: 'scan.clamd.timeoutSeconds', doc: 'Deadline for scanning one file; a scan that takes longer holds the file (fail closed).', example: '600' },
  { path: 'scan.clamd.maxConcurrent', doc: 'Files scanned at the same time (one clamd connection each); more wait their turn, and their deadline starts when their scan does. The managed clamd runs with at least this many threads plus two.', example: '8' },
  { path: 'scan.clamd.startTimeoutSeconds', doc: 'How long the managed clamd may take to load its signatures and answer PING at start (freshclam\'s full set takes tens of seconds and about 1.5 GB of memory).', example: '300' },
  { path: 'scan.databaseDir', doc: 'Signature database folder for the managed clamd. null: freshclam\'s /var/lib/clamav if it has signatures, else a generated test-only set (EICAR), reported loudly.', example: '"/var/lib/clamav"' },
  { path: 'upload.maxFileBytes', doc: 'Largest single file accepted from the portal.', example: '4294967296' },
  { path: 'upload.defaultAllowanceBytes', doc: 'Size allowance of a new upload code when none is given.', example: '20000000000' },
  { path: 'upload.defaultCodeDays', doc: 'Validity of a new upload code when no expiry is given, in days.', example: '30' },
  { path: 'upload.maxFilesPerUpload', doc: 'Most files one upload may contain.', example: '50000' },
  { path: 'upload.chunkBytes', doc: 'Size of each request of the resumable (tus) transfer from the browser: a file is sent in chunks of this size, each acknowledged once it is durably on disk, so no request runs long (on a slow line the browser sends fewer files at a time, so that a chunk takes under about 40 s) and a resumed file continues from the last chunk.', example: '4194304' },
  { path: 'upload.parallelFiles', doc: 'Files the browser sends at the same time (browsers open at most 6 connections to one server; the page needs one for its status).', example: '2' },
  { path: 'upload.unfinishedDays', doc: 'An upload that was started but not finished (the browser went away) and has had no activity for this many days expires: what it had staged is discarded (audited). Until then the uploader can continue it by entering the code again and adding the same files.', example: '14' },
  { path: 'institutions', doc: 'Institutions that hand out upload codes; shown in the portal header.', example: '[{"id":"main","name":"St. Example","phone":"+31 20 000 0000","email":"pacs@example.org","manualUrl":"https://example.org/manual.pdf","privacyPolicyUrl":"https://example.org/privacy"}]' },
  { path: 'institutions[].id', doc: 'Short identifier used by `uplink code create --institution`.', example: '"main"' },
  { path: 'institutions[].name', doc: 'Name shown to uploaders.', example: '"St. Example Hospital"' },
  { path: 'institutions[].phone', doc: 'Phone number shown to uploaders.', example: '"+31 20 000 0000"' },
  { path: 'institutions[].email', doc: 'E-mail address shown to uploaders.', example: '"radiology@example.org"' },
  { path: 'institutions[].manualUrl', doc: 'Link to the upload manual.', example: '"https://example.org/upload-manual.pdf"' },
  { path: 'institutions[].privacyPolicyUrl', doc: 'Link to the privacy policy the uploader agrees to.', example: '"https://example.org/privacy"' },
  { path: 'forward.retryInitialSeconds', doc: 'First retry delay after a transient forwarding failure; doubles on each failure.', example: '30' },
  { path: 'forward.retryMaxSeconds', doc: 'Cap on the retry delay.', example: '600' },
  { path: 'forward.giveUpAfterHours', doc: 'Transient failures for this long turn a job into failed (resendable).', example: '336' },
  { path: 'forward.maxInstancesPerAssociation', doc: 'Most instances sent over one association.', example: '500' },
  { path: 'forward.maxBytesPerAssociation', doc: 'Most bytes sent over one association (an instance larger than this still goes, alone).', example: '2147483648' },
  { path: 'forward.concurrentDestinations', doc: 'Destinations sent to at the same time; the others wait their turn.', example: '8' },
  { path: 'forward.associationsPerDestination', doc: 'Associations open to one destination at the same time, each for a different study (one study never goes over two associations at once).', example: '1' },
  { path: 'session.idleMinutes', doc: 'A console or portal session ends after this long without a request.', example: '15' },
  { path: 'session.absoluteHours', doc: 'A session ends this long after login, active or not.', example: '8' },
  { path: 'console.loginAttemptsPerAddress', doc: 'Failed console log-ins one client address (an IPv6 /64) may make per window; then its attempts are refused unchecked until the oldest failure leaves the window. Kept in memory: a restart resets the counts.', example: '10' },
  { path: 'console.loginAttemptsPerUser', doc: 'Failed console log-ins per user name (from any address) per window; then that name waits. A successful log-in clears the name\'s count.', example: '3' },
  { path: 'console.loginAttemptWindowMinutes', doc: 'Length of the sliding window of the two log-in limits above, in minutes.', example: '30' },
  { path: 'console.passwordMinLength', doc: 'Shortest password `uplink user add` and `uplink user password` accept, in characters.', example: '16' },
  { path: 'console.pageSize', doc: 'Studies (and audit entries) per page in the console.', example: '50' },
  { path: 'console.workflowStatuses', doc: 'Workflow statuses an admin can give a study in the console, besides those the policies give and those already in use.', example: '["Received","In review","Reported","Finalized"]' },
  { path: 'portal.defaultLanguage', doc: 'Language of the portal when the browser asks for none we have ("en" or "nl"); the page has a switch.', example: '"nl"' },
  { path: 'portal.codeAttemptsPerAddress', doc: 'Wrong upload codes one client address (an IPv6 /64) may enter per window; then it waits. Kept in memory: a restart resets the counts.', example: '5' },
  { path: 'portal.codeAttemptsGlobal', doc: 'Wrong upload codes accepted from all addresses together per window; then every code entry waits. Kept in memory.', example: '500' },
  { path: 'portal.codeAttemptWindowMinutes', doc: 'Length of the sliding window of the two limits above, in minutes.', example: '30' },
  { path: 'portal.zipMaxEntries', doc: 'Most entries a ZIP file chosen in the portal may have; a larger ZIP is not opened (checked in the browser).', example: '50000' },
  { path: 'portal.zipMaxBytes', doc: 'Most bytes all entries of one ZIP file may unpack to in the browser.', example: '8589934592' },
  { path: 'portal.zipMaxRatio', doc: 'Highest unpacked-to-packed size ratio of a ZIP entry; above it the ZIP is treated as a "zip bomb" and not opened.', example: '100' },
];
