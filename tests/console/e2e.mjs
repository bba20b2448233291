// End-to-end test of the shouhou console in headless Chromium (Debian's /usr/bin/chromium),
// driven by playwright-core against `shouhou serve --demo --keep-running`.
//
//   node tests/console/e2e.mjs BASE_URL RECEIVED_URL [SCREENSHOT_DIR]
//
// BASE_URL is the service (http://127.0.0.1:PORT); RECEIVED_URL lists what the demo's fake
// platform received (JSON). The Rust test `console::browser_end_to_end` starts the demo and runs
// this. Exit code 0 only when every step passed (node:test).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { createHmac } from "node:crypto";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, receivedUrl, shots = "target/console-screenshots"] = process.argv.slice(2);
if (!base || !receivedUrl) {
  console.error("usage: node e2e.mjs BASE_URL RECEIVED_URL [SCREENSHOT_DIR]");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    // Playwright gives every launch a fresh temporary profile (user data dir).
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});
after(async () => { await browser?.close(); });

async function login(user, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport, locale: "zh-CN" });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  await page.goto(`${base}/console/queue`);
  assert.match(page.url(), /\/console\/login$/, "no session: sent to the login page");
  await page.fill('input[name="username"]', user);
  await page.fill('input[name="password"]', `${user}-demo-pass`);
  await Promise.all([page.waitForURL(/\/console\/queue/), page.click('button[type="submit"]')]);
  return { context, page };
}

async function received() {
  const res = await fetch(receivedUrl);
  return res.json();
}

/** Opens the draft of the queue row whose buyer message contains `words`; returns its id. */
async function openDraft(page, words) {
  await page.goto(`${base}/console/queue`);
  const row = page.locator("#queue-rows tr", { hasText: words }).first();
  const id = await row.getAttribute("data-id");
  assert.ok(id, `a queue row with ${words}`);
  await page.goto(`${base}/console/drafts/${id}`);
  return id;
}

test("a wrong password is refused with a clear message", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/console/login`);
  await page.fill('input[name="username"]', "agent");
  await page.fill('input[name="password"]', "not-the-password");
  await page.click('button[type="submit"]');
  await page.getByText("用户名或密码错误").waitFor();
  await page.screenshot({ path: join(shots, "login-wrong-password.png") });
  await context.close();
});

test("an agent logs in and sees the queue, escalations first", async () => {
  const { context, page } = await login("agent");
  await page.getByRole("heading", { name: /审核队列/ }).waitFor();
  const first = page.locator("#queue-rows tr").first();
  assert.equal(await first.getAttribute("class"), "urgent");
  // Keyboard: j selects the first row, j again the second.
  await page.keyboard.press("j");
  await page.keyboard.press("j");
  assert.equal(await page.locator("#queue-rows tr.sel").count(), 1);
  assert.equal(await page.locator("#queue-rows tr").nth(1).getAttribute("class").then((c) => c.includes("sel")), true);
  await page.screenshot({ path: join(shots, "queue.png"), fullPage: true });
  await context.close();
  const phone = await login("agent", { width: 390, height: 844 });
  await phone.page.screenshot({ path: join(shots, "queue-phone.png"), fullPage: true });
  await phone.context.close();
});

// The demo's fixed shop secret (src/service/run.rs, DEMO_KEY; local demo only).
const DEMO_KEY = Buffer.from("shouhou-demo-secret-not-for-prod");

/** Posts a buyer message to the service as the platform would: a Standard Webhooks signature. */
async function buyerSays(messageId, conversationId, text) {
  const body = JSON.stringify({ message_id: messageId, shop_id: "shop-1", conversation_id: conversationId,
    sender: { account_id: "tb_live_1" }, text });
  const ts = Math.floor(Date.now() / 1000);
  const sig = createHmac("sha256", DEMO_KEY).update(`${messageId}.${ts}.${body}`).digest("base64");
  const res = await fetch(`${base}/v1/events`, {
    method: "POST", body,
    headers: { "content-type": "application/json", "x-shouhou-shop": "shop-1", "webhook-id": messageId,
      "webhook-timestamp": String(ts), "webhook-signature": `v1,${sig}` },
  });
  assert.equal(res.status, 202, await res.text());
}

test("a new buyer message appears in the open queue without a reload", async () => {
  const { context, page } = await login("agent");
  await page.getByRole("heading", { name: /审核队列/ }).waitFor();
  await page.evaluate(() => { window.notReloaded = true; });
  const before = await page.locator("#queue-rows tr[data-id]").count();
  await buyerSays("live-m1", "c-live", "我买的牛排收到就化冻了，还有股怪味");
  await page.locator("#queue-rows tr", { hasText: "牛排收到就化冻了" }).waitFor({ timeout: 15000 });
  assert.equal(await page.evaluate(() => window.notReloaded), true, "the page was not reloaded");
  assert.equal(await page.locator("#queue-rows tr[data-id]").count(), before + 1);
  assert.equal(await page.locator("#count").textContent(), String(before + 1));
  await context.close();
});

test("approving a draft (key a) sends it to the platform", async () => {
  const { context, page } = await login("agent");
  const id = await openDraft(page, "鸡腿刚打开发现都臭了");
  await page.locator("mark.ev", { hasText: "臭了" }).waitFor();
  await page.screenshot({ path: join(shots, "conversation.png"), fullPage: true });
  const reply = (await page.locator(".draft-reply").textContent()).trim();
  const before = (await received()).length;
  await Promise.all([page.waitForURL(/msg=approved-/), page.keyboard.press("a")]);
  await page.getByText(`已批准并发送草稿 #${id}`).waitFor();
  let got = [];
  for (let i = 0; i < 100 && got.length <= before; i++) {
    got = await received();
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(got.length > before, "the platform received the reply");
  assert.equal(got[got.length - 1].text, reply);
  assert.equal(got[got.length - 1].conversation_id, "c-rot");
  await context.close();
});

test("an arguing edit is blocked live with the span highlighted, and the server refuses it", async () => {
  const { context, page } = await login("agent");
  await openDraft(page, "红色外套");
  const before = (await received()).length;
  await page.keyboard.press("e");
  const box = page.locator("#edit-text");
  assert.equal(await box.evaluate((el) => el === document.activeElement), true, "e focuses the editor");
  await box.fill("亲，我们发出都是有放冰袋不会坏的，是您自己没放冰箱吧");
  await page.locator('#check[data-verdict="block"]').waitFor();
  const marked = await page.locator("#check-preview mark.bad").allTextContents();
  assert.ok(marked.join("").includes("不会坏"), `marked: ${marked}`);
  await page.locator("#check-findings", { hasText: "建议改为" }).waitFor();
  assert.equal(await page.locator("#send-edit").isDisabled(), true, "a blocked text cannot be sent");
  await page.screenshot({ path: join(shots, "edit-blocked.png"), fullPage: true });
  // Forcing the button does not get it past the server.
  await page.locator("#send-edit").evaluate((b) => { b.disabled = false; });
  await page.locator("#send-edit").click();
  await page.locator("#check-status", { hasText: "安全检查拦截" }).waitFor();
  assert.ok((await page.locator("#check-preview mark.bad").count()) > 0);
  assert.equal((await received()).length, before, "nothing was sent");
  // A kind wording passes.
  await box.fill("亲，真的很抱歉给您发错了，这边马上为您处理。");
  await page.locator('#check[data-verdict="pass"]').waitFor();
  assert.equal(await page.locator("#send-edit").isDisabled(), false);
  await context.close();
});

test("reject takes a reason", async () => {
  const { context, page } = await login("agent");
  const id = await openDraft(page, "红色外套");
  const url = page.url();
  await page.keyboard.press("r");
  await page.locator("#reject").click();
  assert.equal(page.url(), url, "no reason: the browser does not submit");
  await page.fill("#reject-reason", "需要先核实仓库发货记录");
  await Promise.all([page.waitForURL(/msg=rejected-/), page.locator("#reject").click()]);
  await page.getByText(`已驳回草稿 #${id}`).waitFor();
  assert.equal(await page.locator(`#queue-rows tr[data-id="${id}"]`).count(), 0);
  await context.close();
});

test("a part-time user sees only FAQ items, masked, and not the agents' queue", async () => {
  const { context, page } = await login("parttime");
  await page.getByRole("heading", { name: /常见问题/ }).waitFor();
  const body = await page.content();
  assert.ok(!body.includes("臭了"), "no agent items");
  assert.ok(body.includes("怎么退货呀"), "the FAQ item");
  await page.screenshot({ path: join(shots, "part-time-queue.png"), fullPage: true });
  await page.locator("#queue-rows a", { hasText: "怎么退货呀" }).click();
  await page.locator("#order-card").waitFor();
  const card = await page.locator("#order-card").textContent();
  assert.ok(card.includes("138****0000") && !card.includes("13800000000"), card);
  assert.ok(!(await page.content()).includes("测试路1号"));
  assert.equal(await page.locator("#approve-form").count(), 0, "no decisions");
  assert.equal(await page.locator("#triage-exceptions").count(), 1, "triage buttons");
  await page.screenshot({ path: join(shots, "part-time-conversation.png"), fullPage: true });
  const res = await page.goto(`${base}/console/calls`);
  assert.equal(res.status(), 403);
  await page.getByText("您的角色无权进行此操作").waitFor();
  await context.close();
});

test("the call button is disabled outside the window, with the next allowed time", async () => {
  const { context, page } = await login("agent");
  await page.goto(`${base}/console/calls?at=${encodeURIComponent("2026-11-25T21:30:00+08:00")}`);
  const button = page.locator("button.call-now").first();
  assert.equal(await button.isDisabled(), true);
  await page.locator(".call-reason", { hasText: "不在允许拨打时段" }).first().waitFor();
  await page.getByText("最早可拨打：2026-11-26 10:00").first().waitFor();
  await page.screenshot({ path: join(shots, "calls-outside-window.png"), fullPage: true });
  await page.goto(`${base}/console/calls?at=${encodeURIComponent("2026-11-26T11:00:00+08:00")}`);
  assert.equal(await page.locator("button.call-now").first().isDisabled(), false, "inside the window");
  await context.close();
});

test("supervisor pages: stats, autonomy, try it", async () => {
  const { context, page } = await login("supervisor");
  await page.goto(`${base}/console/stats`);
  await page.locator("svg.chart").waitFor();
  await page.screenshot({ path: join(shots, "stats.png"), fullPage: true });
  await page.goto(`${base}/console/autonomy`);
  await page.getByText("样本不足").first().waitFor();
  assert.equal(await page.locator('tr[data-intent="rotten_food"] button').isDisabled(), true, "not earned yet");
  await page.screenshot({ path: join(shots, "autonomy.png"), fullPage: true });
  await page.goto(`${base}/console/try`);
  await page.fill('textarea[name="text"]', "发错颜色了，而且还少了一件");
  await page.click('form.card button[type="submit"]');
  await page.locator("#try-result").waitFor();
  await page.screenshot({ path: join(shots, "try.png"), fullPage: true });
  await context.close();
});
