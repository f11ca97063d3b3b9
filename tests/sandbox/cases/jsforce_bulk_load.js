// Loads N Accounts through jsforce's Bulk 2.0 client, which streams the CSV (Transfer-Encoding: chunked).
const jsforce = require('jsforce');
const { Readable } = require('stream');
(async () => {
  const [instanceUrl, accessToken, tag, n] = process.argv.slice(2);
  const conn = new jsforce.Connection({ instanceUrl, accessToken, version: '62.0' });
  const lines = ['Name,Legacy_Id__c'];
  for (let i = 0; i < Number(n); i++) lines.push(`JS ${i} ${tag},JS${i}${tag}`);
  const input = Readable.from([lines.join('\n') + '\n']);
  conn.bulk2.pollTimeout = 60000;
  const res = await conn.bulk2.loadAndWaitForResults({ object: 'Account', operation: 'insert', lineEnding: 'LF', input });
  const q = await conn.query(`SELECT COUNT() FROM Account WHERE Name LIKE 'JS % ${tag}'`);
  console.log(JSON.stringify({ successful: res.successfulResults.length, failed: res.failedResults.length,
                               unprocessed: res.unprocessedRecords.length, counted: q.totalSize }));
})().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
