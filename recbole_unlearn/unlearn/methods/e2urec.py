import copy

import torch
from peft import LoraConfig, get_peft_model

from recbole_unlearn.data.loaders import config_with
from recbole_unlearn.compat import SafeTrainer
from recbole_unlearn.unlearn.trainer import PairedBatches, UnlearnTrainer, kl_to_teacher


def forgetting_teacher_logits(original_logits, augmented_logits, alpha):
    """z_f = z_o - alpha * relu(z_a - z_o): push down what fine-tuning on the forget data pushed up."""
    return original_logits - alpha * torch.relu(augmented_logits - original_logits)


def frozen(model):
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


class E2URec(UnlearnTrainer):
    """E2URec (Wang et al., 2024): train only LoRA modules, distilled from two frozen teachers.

    Remembering teacher: the Original, on retained data (KL, plus CE on the true answer).
    Forgetting teacher: ``forgetting_teacher_logits`` of the Original and an augmented model (the
    Original fine-tuned on the forget data), on forget data (KL).
    Loss: w * (CE_retain + KL_retain) + (1 - w) * KL_forget; one forget-only epoch comes first.
    """

    method = "e2urec"

    def prepare_model(self, model):
        self.original = frozen(copy.deepcopy(model))
        backbone = model.backbone
        lora = LoraConfig(
            r=self.param("lora_r"),
            lora_alpha=self.param("lora_alpha"),
            lora_dropout=self.param("lora_dropout"),
            target_modules=self.param("lora_targets") or backbone.lora_targets,
        )
        backbone.model = get_peft_model(backbone.model, lora)
        return model

    def prepare(self, forget_data, retain_data):
        self.augmented = copy.deepcopy(self.original)
        for parameter in self.augmented.parameters():
            parameter.requires_grad_(True)
        augment_config = config_with(
            self.config,
            learning_rate=self.param("augment_learning_rate"),
            epochs=self.param("augment_epochs"),
        )
        SafeTrainer(augment_config, self.augmented).fit(forget_data, saved=False, verbose=False)
        frozen(self.augmented)

    def schedule(self, forget_data, retain_data):
        return [PairedBatches(forget_data)] + [PairedBatches(forget_data, retain_data)] * self.epochs

    def compute_loss(self, pair):
        with torch.no_grad():
            teacher = forgetting_teacher_logits(
                self.original.answer_logits(pair.forget),
                self.augmented.answer_logits(pair.forget),
                self.param("alpha"),
            )
        forget_loss = kl_to_teacher(teacher, self.model.answer_logits(pair.forget))
        if pair.retain is None:
            return forget_loss
        student = self.model.answer_logits(pair.retain)
        with torch.no_grad():
            remembered = self.original.answer_logits(pair.retain)
        answers = self.model.answer_token_ids(pair.retain)
        remember_loss = torch.nn.functional.cross_entropy(student, answers) + kl_to_teacher(remembered, student)
        weight = self.param("retain_weight")
        return weight * remember_loss + (1 - weight) * forget_loss

    def save_unlearned(self, checkpoint_file):
        """Only the LoRA adapter (peft's own format), next to ``checkpoint_file``."""
        self.model.backbone.model.save_pretrained(checkpoint_file.removesuffix(".safetensors") + "-adapter")
