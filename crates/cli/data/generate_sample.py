"""Writes sample_conversations.jsonl: realistic Rasa 3.6 conversations, one broker body per line, byte for byte
as Rasa's PikaEventBroker publishes them (Python's json.dumps, sender_id first, model metadata on every event).

Run from this directory: python3 generate_sample.py > sample_conversations.jsonl
"""

import hashlib
import json
import sys

MODEL = {"model_id": "5b2a9e0c8d6f4e3c9b1a7d2e4f6a8c0b", "assistant_id": "placeholder_default"}
BOT_DATA = {"elements": None, "quick_replies": None, "buttons": None, "attachment": None, "image": None, "custom": None}


class Conversation:
    def __init__(self, sender_id, start, channel="rest"):
        self.sender_id = sender_id
        self.t = start
        self.channel = channel
        self.lines = []
        self.message = 0

    def _emit(self, event, **fields):
        body = {"sender_id": self.sender_id, "event": event, "timestamp": round(self.t, 6), "metadata": dict(MODEL)}
        body.update(fields)
        self.lines.append(json.dumps(body))
        self.t += 0.013

    def _pause(self, seconds):
        self.t += seconds

    def session_start(self):
        self.action("action_session_start", policy=None, confidence=1.0)
        self._emit("session_started")
        self.listen(policy=None, confidence=None)

    def action(self, name, policy="RulePolicy", confidence=1.0):
        self._emit("action", name=name, policy=policy, confidence=confidence, action_text=None, hide_rule_turn=False)

    def listen(self, policy="RulePolicy", confidence=1.0):
        self.action("action_listen", policy=policy, confidence=confidence)

    def user(self, text, intent, confidence=0.97, entities=(), ranking=None, retrieval=None):
        self._pause(6.5)
        self.message += 1
        message_id = hashlib.md5(f"{self.sender_id}/{self.message}".encode()).hexdigest()
        ranking = ranking or [[intent, confidence], ["nlu_fallback", round(1 - confidence, 4)]]
        intent_data = {"name": intent, "confidence": confidence}
        parse_data = {
            "intent": intent_data,
            "entities": [
                {"entity": e, "start": text.index(v), "end": text.index(v) + len(v), "confidence_entity": 0.9987,
                 "value": v, "extractor": "DIETClassifier"}
                for e, v in entities
            ],
            "text": text,
            "message_id": message_id,
            "metadata": {},
            "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking],
        }
        if retrieval:
            intent_data["full_retrieval_intent_name"] = retrieval[0]
            parse_data["response_selector"] = {
                "all_retrieval_intents": [intent],
                intent: {
                    "response": {"responses": [{"text": retrieval[1]}], "confidence": 0.93,
                                 "intent_response_key": retrieval[0], "utter_action": f"utter_{retrieval[0]}"},
                    "ranking": [{"confidence": 0.93, "intent_response_key": retrieval[0]}],
                },
            }
        self._emit("user", text=text, parse_data=parse_data, input_channel=self.channel, message_id=message_id)

    def bot(self, text, utter, buttons=None):
        data = dict(BOT_DATA)
        if buttons:
            data["buttons"] = [{"title": title, "payload": payload} for title, payload in buttons]
        body = {"sender_id": self.sender_id, "event": "bot", "timestamp": round(self.t, 6),
                "metadata": {"utter_action": utter, **MODEL}, "text": text, "data": data}
        self.lines.append(json.dumps(body))
        self.t += 0.009

    def say(self, utter, text, buttons=None, policy="RulePolicy", confidence=1.0):
        self.action(utter, policy=policy, confidence=confidence)
        self.bot(text, utter, buttons)

    def slot(self, name, value):
        self._emit("slot", name=name, value=value)

    def loop(self, name):
        self._emit("active_loop", name=name)

    def plain(self, event, **fields):
        self._emit(event, **fields)


def restaurant(sender, start, cuisine, people, outdoor, texts):
    c = Conversation(sender, start)
    c.session_start()
    c.user(texts[0], "request_restaurant", 0.9921)
    c.action("restaurant_form")
    c.loop("restaurant_form")
    c.slot("requested_slot", "cuisine")
    c.bot(texts[1], "utter_ask_cuisine")
    c.listen()
    c.user(texts[2], "inform", 0.9634, entities=[("cuisine", cuisine)])
    c.slot("cuisine", cuisine)
    c.action("restaurant_form")
    c.slot("requested_slot", "num_people")
    c.bot(texts[3], "utter_ask_num_people")
    c.listen()
    c.user(texts[4], "inform", 0.9412, entities=[("number", people)])
    c.slot("num_people", people)
    c.action("restaurant_form")
    c.slot("requested_slot", "outdoor_seating")
    c.bot(texts[5], "utter_ask_outdoor_seating", buttons=[("Yes", "/affirm"), ("No", "/deny")])
    c.listen()
    c.user("/affirm" if outdoor else "/deny", "affirm" if outdoor else "deny", 1.0)
    c.slot("outdoor_seating", outdoor)
    c.action("restaurant_form")
    c.slot("requested_slot", None)
    c.loop(None)
    c.say("utter_submit", texts[6])
    c.say("utter_slots_values", texts[7])
    c.listen()
    return c


def conversations():
    out = []
    out.append(restaurant("3f1c0b7e-restaurant-alice", 1700000000.125, "italian", "4", True, [
        "I'd like to book a table", "What cuisine would you like?", "italian please",
        "How many people will be dining?", "we are 4", "Would you like to sit outside?",
        "All done! I've booked your table.", "Italian for 4, outside.",
    ]))
    out.append(restaurant("9b2d4c1a-restaurant-camille", 1700003600.5, "française", "2", False, [
        "Je voudrais réserver une table pour ce soir", "Quelle cuisine préférez-vous ?",
        "cuisine française, s'il vous plaît", "Combien de personnes ?", "nous serons 2",
        "Souhaitez-vous être en terrasse ?", "C'est réservé ! À ce soir.", "Cuisine française pour 2, à l'intérieur.",
    ]))
    out.append(restaurant("c4e8a2f0-restaurant-jun", 1700007200.75, "寿司", "3", False, [
        "予約をお願いします", "どの料理がよろしいですか？", "寿司がいいです", "何名様ですか？", "3 人です",
        "テラス席をご希望ですか？", "ご予約を承りました 🍣", "寿司、3名様、店内。",
    ]))

    c = Conversation("support-5521-password", 1700010000.0, channel="socketio")
    c.session_start()
    c.user("hi, I can't log in to my account", "login_problem", 0.9811)
    c.say("utter_ask_email", "Sorry to hear that. What's the email address on your account?", policy="TEDPolicy", confidence=0.9634)
    c.listen()
    c.user("it's sam@example.com", "inform", 0.9512, entities=[("email", "sam@example.com")])
    c.slot("email", "sam@example.com")
    c.action("action_send_password_reset", policy="TEDPolicy", confidence=0.9877)
    c.bot("I've sent a password reset link to sam@example.com. It is valid for 30 minutes.", "utter_reset_sent")
    c.listen()
    c.user("got it, thanks!", "thankyou", 0.9965)
    c.say("utter_youarewelcome", "You're welcome! Anything else?")
    c.listen()
    c.user("no that's all", "deny", 0.9733)
    c.say("utter_goodbye", "Bye! Have a great day.")
    c.listen()
    out.append(c)

    c = Conversation("support-7710-order-status", 1700012000.25, channel="facebook")
    c.session_start()
    c.user("where is my order 48213?", "order_status", 0.9902, entities=[("order_id", "48213")])
    c.slot("order_id", "48213")
    c.action("action_check_order_status", policy="RulePolicy")
    c.slot("order_status", "shipped")
    c.bot("Order 48213 shipped yesterday and should arrive on Thursday.", "utter_order_shipped")
    c.listen()
    c.user("can I change the delivery address?", "change_address", 0.8834)
    c.say("utter_change_address", "Once an order has shipped the address can't be changed, but you can redirect it with the carrier.",
          buttons=[("Open carrier page", "/open_carrier"), ("Talk to a person", "/human_handoff")], policy="TEDPolicy", confidence=0.9012)
    c.listen()
    c.user("/human_handoff", "human_handoff", 1.0)
    c.action("action_handoff_to_agent")
    c.bot("I'm connecting you to a colleague. Someone will be with you shortly.", "utter_handoff")
    c.plain("pause")
    out.append(c)

    c = Conversation("smalltalk-8a1f", 1700015000.0)
    c.session_start()
    c.user("hey there", "greet", 0.9988)
    c.say("utter_greet", "Hey! How are you?", policy="TEDPolicy", confidence=0.9954)
    c.listen()
    c.user("I'm doing great", "mood_great", 0.9871)
    c.say("utter_happy", "Great, carry on!", policy="TEDPolicy", confidence=0.9902)
    c.listen()
    c.user("bye", "goodbye", 0.9993)
    c.say("utter_goodbye", "Bye")
    c.listen()
    out.append(c)

    c = Conversation("smalltalk-bot-challenge", 1700016000.5)
    c.session_start()
    c.user("are you a bot?", "bot_challenge", 0.9976)
    c.say("utter_iamabot", "I am a bot, powered by Rasa.")
    c.listen()
    c.user("what's the meaning of life?", "out_of_scope", 0.6123)
    c.action("action_default_fallback", policy="RulePolicy", confidence=0.3)
    c.bot("Sorry, I can't handle that request.", "utter_default")
    c.plain("rewind")
    c.listen()
    c.user("ok, tell me a joke then", "tell_joke", 0.9431)
    c.say("utter_joke", "Why did the chatbot cross the road? It was programmed to.", policy="TEDPolicy", confidence=0.9511)
    c.listen()
    out.append(c)

    c = Conversation("restart-4f90", 1700017000.0)
    c.session_start()
    c.user("book a flight to Berlin", "book_flight", 0.9512, entities=[("city", "Berlin")])
    c.slot("city", "Berlin")
    c.say("utter_ask_date", "When would you like to fly to Berlin?")
    c.listen()
    c.user("/restart", "restart", 1.0)
    c.action("action_restart")
    c.bot("Okay, let's start over.", "utter_restart")
    c.plain("restart")
    c.action("action_session_start", policy=None, confidence=1.0)
    c.plain("session_started")
    c.listen(policy=None, confidence=None)
    c.user("book a flight to München instead", "book_flight", 0.9488, entities=[("city", "München")])
    c.slot("city", "München")
    c.say("utter_ask_date", "When would you like to fly to München?")
    c.listen()
    c.user("next friday", "inform", 0.9011, entities=[("date", "next friday")])
    c.slot("date", "2023-11-24")
    c.say("utter_flight_options", "I found 3 flights to München on Friday, 24 November.")
    c.listen()
    out.append(c)

    c = Conversation("undo-0c3b", 1700018000.0)
    c.session_start()
    c.user("set an alarm for 7", "set_alarm", 0.9122, entities=[("time", "7")])
    c.slot("time", "07:00")
    c.say("utter_alarm_set", "Your alarm is set for 07:00.")
    c.plain("undo")
    c.say("utter_alarm_set", "Your alarm is set for 07:00 tomorrow.")
    c.listen()
    out.append(c)

    c = Conversation("unicode-✓-émoji", 1700019000.0, channel="telegram")
    c.session_start()
    c.user("Grüß Gott! Haben Sie heute geöffnet? 😊", "opening_hours", 0.9534)
    c.say("utter_opening_hours", "Ja, heute von 9–18 Uhr geöffnet. Schönen Tag! ☀️")
    c.listen()
    c.user("👍", "affirm", 0.8123)
    c.say("utter_happy", "🎉")
    c.listen()
    out.append(c)

    c = Conversation("hotel-es-12", 1700020000.0, channel="whatsapp")
    c.session_start()
    c.user("Quiero reservar una habitación en Sevilla", "book_hotel", 0.9687, entities=[("city", "Sevilla")])
    c.slot("city", "Sevilla")
    c.action("hotel_form")
    c.loop("hotel_form")
    c.slot("requested_slot", "nights")
    c.bot("¿Cuántas noches?", "utter_ask_nights")
    c.listen()
    c.user("¿tienen piscina?", "ask_amenities", 0.9233)
    c.plain("action_execution_rejected", name="hotel_form", policy=None, confidence=None)
    c.say("utter_amenities", "Sí, el hotel tiene piscina en la azotea.", policy="TEDPolicy", confidence=0.9411)
    c.action("hotel_form", policy="RulePolicy")
    c.slot("requested_slot", "nights")
    c.bot("¿Cuántas noches?", "utter_ask_nights")
    c.listen()
    c.user("tres noches", "inform", 0.9577, entities=[("nights", "tres")])
    c.slot("nights", 3)
    c.action("hotel_form")
    c.slot("requested_slot", None)
    c.loop(None)
    c.say("utter_hotel_booked", "¡Listo! 3 noches en Sevilla.")
    c.listen()
    out.append(c)

    c = Conversation("subscription-cancel-331", 1700021000.0)
    c.session_start()
    c.user("I want to cancel my subscription", "cancel_subscription", 0.9845)
    c.say("utter_confirm_cancel", "Are you sure? You'll lose access at the end of the billing period.",
          buttons=[("Yes, cancel", "/affirm"), ("Keep it", "/deny")])
    c.listen()
    c.user("/affirm", "affirm", 1.0)
    c.action("action_cancel_subscription")
    c.slot("subscription_active", False)
    c.bot("Your subscription is cancelled. You can use it until 30 November.", "utter_cancelled")
    c.listen()
    out.append(c)

    c = Conversation("faq-retrieval-77", 1700022000.0)
    c.session_start()
    c.user("what payment methods do you accept?", "faq", 0.9911, retrieval=("faq/payment_methods", "We accept cards, PayPal and bank transfer."))
    c.say("utter_faq", "We accept cards, PayPal and bank transfer.")
    c.listen()
    c.user("do you ship abroad?", "faq", 0.9764, retrieval=("faq/shipping_abroad", "We ship to 30 countries in Europe."))
    c.say("utter_faq", "We ship to 30 countries in Europe.")
    c.listen()
    out.append(c)

    c = Conversation("multi-session-9000", 1700023000.0)
    c.session_start()
    c.user("hi", "greet", 0.9991)
    c.say("utter_greet", "Hey! How are you?")
    c.listen()
    c._pause(3700)
    c.action("action_session_start", policy=None, confidence=1.0)
    c.plain("session_started")
    c.slot("name", "Priya")
    c.listen(policy=None, confidence=None)
    c.user("hello again", "greet", 0.9871)
    c.say("utter_greet_name", "Welcome back, Priya!")
    c.listen()
    out.append(c)

    c = Conversation("reminder-2b", 1700027000.0)
    c.session_start()
    c.user("remind me to call mum in 10 minutes", "set_reminder", 0.9322)
    c.action("action_set_reminder")
    c.bot("I'll remind you in 10 minutes.", "utter_reminder_set")
    c.plain("reminder", intent="EXTERNAL_reminder", entities=None, date_time="2023-11-22T05:23:20.125000+00:00",
            name="call_mum", kill_on_user_msg=False)
    c.listen()
    out.append(c)

    c = Conversation("restaurant-deny-15", 1700028000.0)
    c.session_start()
    c.user("any good thai places?", "request_restaurant", 0.8712, entities=[("cuisine", "thai")])
    c.slot("cuisine", "thai")
    c.say("utter_suggest", "How about Baan Thai on Main Street?", buttons=[("Sounds good", "/affirm"), ("Something else", "/deny")])
    c.listen()
    c.user("/deny", "deny", 1.0)
    c.say("utter_suggest", "Then maybe Lotus Garden near the station?")
    c.listen()
    c.user("perfect", "affirm", 0.9612)
    c.say("utter_great", "Enjoy your meal!")
    c.listen()
    out.append(c)

    c = Conversation("smalltalk-thanks-21", 1700029000.0)
    c.session_start()
    c.user("thanks a lot", "thankyou", 0.9944)
    c.say("utter_youarewelcome", "You're welcome!")
    c.listen()
    out.append(c)

    c = Conversation("weather-oos-42", 1700030000.0)
    c.session_start()
    c.user("will it rain tomorrow in Oslo?", "ask_weather", 0.9087, entities=[("city", "Oslo")])
    c.slot("city", "Oslo")
    c.action("action_weather")
    c.bot("Tomorrow in Oslo: light rain, 4 °C.", "utter_weather")
    c.listen()
    c.user("brrr", "nlu_fallback", 0.3, ranking=[["nlu_fallback", 0.3], ["mood_unhappy", 0.2912]])
    c.action("action_default_fallback", policy="RulePolicy", confidence=0.3)
    c.bot("Sorry, I didn't get that. Can you rephrase?", "utter_default")
    c.plain("rewind")
    c.listen()
    out.append(c)

    c = Conversation("support-refund-64", 1700031000.0)
    c.session_start()
    c.user("I'd like a refund for order 99102", "request_refund", 0.9789, entities=[("order_id", "99102")])
    c.slot("order_id", "99102")
    c.action("refund_form")
    c.loop("refund_form")
    c.slot("requested_slot", "reason")
    c.bot("Sorry about that. Why would you like a refund?", "utter_ask_reason")
    c.listen()
    c.user("it arrived broken", "inform", 0.9123, entities=[("reason", "broken")])
    c.slot("reason", "broken")
    c.action("refund_form")
    c.slot("requested_slot", None)
    c.loop(None)
    c.action("action_submit_refund")
    c.slot("refund_id", "RF-2023-0042")
    c.bot("Your refund RF-2023-0042 is on its way. Expect it within 5 business days.", "utter_refund_submitted")
    c.listen()
    out.append(c)
    return out


def main():
    # Interleaved, as concurrent conversations reach a queue.
    convs = conversations()
    longest = max(len(c.lines) for c in convs)
    for i in range(longest):
        for c in convs:
            if i < len(c.lines):
                sys.stdout.write(c.lines[i] + "\n")


main()
